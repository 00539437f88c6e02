"""A local stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1: huggingface_hub's real client talks to it
(HF_ENDPOINT), and it records every request and keeps what was committed, so tests see what an upload really sends
(metadata validation, repo creation, pre-upload, LFS batch + upload, commit) and can download it again (repo info, tree, resolve).

Only the endpoints huggingface_hub 2.x uses for create_repo, create_branch, upload_folder (LFS path: the client
runs with HF_HUB_DISABLE_XET=1), repo_info, snapshot_download and hf_hub_download.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    branches: dict[str, str | None] = field(default_factory=lambda: {"main": None})
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    lfs_paths: set[str] = field(default_factory=set)

    def files(self, revision: str) -> dict[str, bytes] | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha, {}) if sha in self.commits or sha is None else None


@dataclass
class HubState:
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs_store: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path without query)
    bodies: dict[str, list] = field(default_factory=dict)  # endpoint kind -> request bodies
    forbidden_owners: set[str] = field(default_factory=set)
    url: str = ""


class Handler(BaseHTTPRequestHandler):
    state: HubState  # set on the subclass per server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: object = None, headers: dict | None = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self, kind: str, body: object) -> None:
        self.state.bodies.setdefault(kind, []).append(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        self.state.requests.append(("POST", path))
        body = self._body()
        if path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/branch/(.+)", path):
            return self._create_branch(m[1], m[2])
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/(.+)", path):
            return self._preupload(m[1], m[2], json.loads(body))
        if m := re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
            return self._lfs_batch(json.loads(body))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/(.+)", path):
            return self._commit(m[1], m[2], [json.loads(line) for line in body.splitlines() if line.strip()])
        self._reply(404, {"error": f"no such endpoint {path}"})

    def do_PUT(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        self.state.requests.append(("PUT", path))
        oid = path.rsplit("/", 1)[-1]
        data = self._body()
        assert hashlib.sha256(data).hexdigest() == oid, "LFS upload does not match its oid"
        self.state.lfs_store[oid] = data
        self._reply(200, {})

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        self.state.requests.append((self.command, path))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path):
            return self._repo_info(m[1], m[2] or "main")
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path):
            return self._tree(m[1], m[2])
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self._resolve(m[1], m[2], m[3])
        self._reply(404, {"error": f"no such endpoint {path}"})

    do_HEAD = do_GET

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def _validate_yaml(self, payload: dict) -> None:
        """The Hub checks a README's metadata before the upload; here: it must be a YAML mapping."""
        self._record("validate_yaml", payload)
        match = re.match(r"---\n(.*?)\n---\n", payload["content"], re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as error:
            return self._reply(400, {"error": f"Invalid YAML in README.md: {error}"})
        if not isinstance(metadata, dict):
            return self._reply(400, {"error": "README.md metadata must be a YAML mapping"})
        self._reply(200, {"errors": [], "warnings": []})

    def _create_repo(self, payload: dict) -> None:
        self._record("create", payload)
        repo_id = f"{payload['organization']}/{payload['name']}"
        if payload["organization"] in self.state.forbidden_owners:
            return self._reply(
                403, {"error": f"You don't have the rights to create a model under {payload['organization']}"}
            )
        if repo_id in self.state.repos:
            return self._reply(
                409, {"error": "You already created this model repo", "url": f"{self.state.url}/{repo_id}"}
            )
        repo = self.state.repos[repo_id] = Repo()  # like the Hub: a new repo has one commit, its .gitattributes
        repo.commits["0" * 40] = {".gitattributes": b"*.pt filter=lfs diff=lfs merge=lfs -text\n"}
        repo.branches["main"] = "0" * 40
        self._reply(200, {"url": f"{self.state.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _create_branch(self, repo_id: str, branch: str) -> None:
        if (repo := self._repo(repo_id)) is None:
            return
        if branch in repo.branches:
            return self._reply(409, {"error": "Reference already exists"})
        repo.branches[branch] = repo.branches["main"]
        self._reply(200, {})

    def _preupload(self, repo_id: str, revision: str, payload: dict) -> None:
        self._record("preupload", payload)
        if (repo := self._repo(repo_id)) is None:
            return
        current = repo.files(revision) or {}
        files = []
        for f in payload["files"]:
            lfs = b"\0" in base64.b64decode(f["sample"]) or f["size"] > 10 * 2**20
            old = current.get(f["path"])
            oid = None if old is None else (hashlib.sha256(old).hexdigest() if lfs else git_blob_sha1(old))
            files.append(
                {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._reply(200, {"files": files, "commitOid": repo.branches.get(revision)})

    def _lfs_batch(self, payload: dict) -> None:
        self._record("lfs_batch", payload)
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs_store:  # already stored: nothing to upload
                entry["actions"] = {"upload": {"href": f"{self.state.url}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self._reply(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo_id: str, revision: str, lines: list[dict]) -> None:
        self._record("commit", lines)
        if (repo := self._repo(repo_id)) is None:
            return
        if revision not in repo.branches:
            return self._reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        files = dict(repo.files(revision) or {})
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                files[value["path"]] = self.state.lfs_store[value["oid"]]
                repo.lfs_paths.add(value["path"])
        sha = hashlib.sha1(json.dumps(sorted((p, git_blob_sha1(c)) for p, c in files.items())).encode()).hexdigest()
        sha = hashlib.sha1(f"{repo.branches[revision]}{sha}{len(repo.commits)}".encode()).hexdigest()  # a new commit
        repo.commits[sha] = files
        repo.branches[revision] = sha
        self._reply(200, {"commitUrl": f"{self.state.url}/{repo_id}/commit/{sha}", "commitOid": sha, "success": True})

    def _repo_info(self, repo_id: str, revision: str) -> None:
        if (repo := self._repo(repo_id)) is None:
            return
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            return self._reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        siblings = [{"rfilename": path} for path in sorted(repo.commits[sha])]
        self._reply(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "siblings": siblings, "private": False})

    def _tree(self, repo_id: str, revision: str) -> None:
        if (repo := self._repo(repo_id)) is None:
            return
        entries = []
        for path, content in sorted(repo.files(revision).items()):
            entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
            if path in repo.lfs_paths:
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
            entries.append(entry)
        self._reply(200, entries)

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        if (repo := self._repo(repo_id)) is None:
            return
        sha = repo.branches.get(revision, revision)
        content = repo.commits.get(sha, {}).get(path)
        if content is None:
            return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        etag = hashlib.sha256(content).hexdigest() if path in repo.lfs_paths else git_blob_sha1(content)
        self._reply(200, raw=content, headers={"X-Repo-Commit": sha, "ETag": f'"{etag}"'})


class RecordingHub:
    """The server, started in a thread; .url for HF_ENDPOINT, .state for what it saw and stored."""

    def __init__(self) -> None:
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = self.state.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
