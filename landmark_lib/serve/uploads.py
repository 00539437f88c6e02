"""What the public app may read and keep: only files uploaded to it (regular files inside Gradio's upload cache),
deleted shortly after their answer. How much may be uploaded: upload_limits.py.

An API call can name any server path as the photo: a plain {"path": ...} skips Gradio's own upload-folder check, and
under `landmark serve` (Gradio mounted on FastAPI, never launch()ed) that check does not run at all, so Gradio would
copy /etc/shadow, or read /dev/zero forever on the event loop, before our code saw the path. UploadsOnly refuses such
requests before Gradio sees them, read_upload again where the photo is read; uploads otherwise stay on disk with
their EXIF GPS until the server restarts (DeferredDeletion).
"""

from __future__ import annotations

import heapq
import json
import os
import stat
import threading
import time
from pathlib import Path

from .upload_limits import respond

# The one answer for any path that is not a readable upload, whether or not it exists (nothing can be probed).
NOT_AN_UPLOAD = (
    "This app only reads photos uploaded to it: upload the photo file, or over the API POST it to /gradio_api/upload "
    'and pass the returned path as {"path": PATH, "meta": {"_type": "gradio.FileData"}}; URLs and base64 data are not accepted.'
)
MAX_FILE_BYTES = 50 * 2**20  # one photo, on the page and the REST API: larger than any phone photo
MAX_FILE_SIZE = f"{MAX_FILE_BYTES // 2**20}mb"  # the same, as Gradio's max_file_size takes it
MAX_JSON_BYTES = 2**20  # an API call's JSON body (files travel by upload, so calls are small)


class UploadRefused(ValueError):
    """A photo path that is not a file uploaded to this app; the message is always NOT_AN_UPLOAD."""


def _inside(path: object, upload_dir: str | os.PathLike) -> Path | None:
    """PATH as an absolute path if it lies inside UPLOAD_DIR both as written and with links resolved, else None.

    The written form is checked first, so a path elsewhere is refused before the filesystem is touched."""
    root = Path(os.path.realpath(upload_dir))
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    lexical = Path(os.path.abspath(path))
    if root not in lexical.parents or root not in Path(os.path.realpath(lexical)).parents:
        return None
    return lexical


def is_upload(path: object, upload_dir: str | os.PathLike) -> bool:
    """PATH names a regular file (not a link, FIFO or device) inside UPLOAD_DIR; nothing is opened or read."""
    lexical = _inside(path, upload_dir)
    try:
        return lexical is not None and stat.S_ISREG(os.lstat(lexical).st_mode)
    except OSError:
        return False


def read_upload(path: str, upload_dir: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of PATH, only if it is a regular file of at most MAX_BYTES inside UPLOAD_DIR (after resolving links).

    Anything else (outside the folder, missing, a link, a FIFO or device, too big) raises UploadRefused with the same
    message; a path outside the folder is refused before the filesystem is touched.
    """
    lexical = _inside(path, upload_dir)
    if lexical is None:
        raise UploadRefused(NOT_AN_UPLOAD)
    try:
        fd = os.open(lexical, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise UploadRefused(NOT_AN_UPLOAD) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            raise UploadRefused(NOT_AN_UPLOAD)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadRefused(NOT_AN_UPLOAD)
    return data


def discard_upload(path: str, uploaded: set[str], *also_tracked: set[str]) -> None:
    """Delete PATH and its per-upload folder if the client uploaded it (in UPLOADED, Gradio's upload_file_set).

    Example photos and other cached files are never uploads, so they stay. ALSO_TRACKED: other sets of cached paths
    (a component's temp_files) to forget it in, so they do not grow with every request.
    """
    path = os.path.abspath(path)
    if path not in uploaded:
        return
    for tracked in (uploaded, *also_tracked):
        tracked.discard(path)
    Path(path).unlink(missing_ok=True)
    try:
        Path(path).parent.rmdir()  # Gradio keeps each upload in a folder named after its hash
    except OSError:
        pass  # not empty: the same photo uploaded again, still waiting for its answer


class DeferredDeletion(threading.Thread):
    """Deletes answered uploads DELAY seconds after their answer, in one daemon thread.

    Gradio stores an upload at <upload folder>/<sha256 of its bytes>/<name>, so two clients sending the same photo
    share one path: deleting at once would remove the file the other request is about to read (8 of 80 normal
    requests were refused that way in benchmarks/hostile_load.py). A file uploaded again after it was read (a new
    inode or mtime) is left for that request's own deletion.
    """

    def __init__(self, uploaded: set[str], *also_tracked: set[str]):
        super().__init__(daemon=True, name="upload-deletion")
        self.uploaded, self.also_tracked = uploaded, also_tracked
        self.due: list[tuple[float, str, tuple[int, int]]] = []
        self.wake = threading.Condition()

    def schedule(self, path: str, delay: float) -> None:
        """Delete PATH (if the client uploaded it) in DELAY seconds, unless it is replaced meanwhile."""
        path = os.path.abspath(path)
        if path not in self.uploaded:
            return
        try:
            info = os.stat(path)
        except OSError:
            return
        with self.wake:
            heapq.heappush(self.due, (time.monotonic() + delay, path, (info.st_ino, info.st_mtime_ns)))
            self.wake.notify()

    def run(self) -> None:
        while True:
            with self.wake:
                while not self.due or self.due[0][0] > time.monotonic():
                    self.wake.wait(self.due[0][0] - time.monotonic() if self.due else None)
                _, path, identity = heapq.heappop(self.due)
            try:
                info = os.stat(path)
            except OSError:
                continue
            if (info.st_ino, info.st_mtime_ns) == identity:
                discard_upload(path, self.uploaded, *self.also_tracked)


def _file_references(value: object):
    """Every dict in a JSON VALUE that names a file: a "path", or a "url" without one (a URL or base64 data)."""
    if isinstance(value, dict):
        if "path" in value or "url" in value:
            yield value
        else:
            for item in value.values():
                yield from _file_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _file_references(item)


class UploadsOnly:
    """ASGI middleware: an API call (any POST that is not a multipart upload: Gradio's /call, /queue/join, /run ...)
    may name files only by the path of a file uploaded to this server (is_upload); any other path, a URL or base64 data
    is answered HTTP 400 with NOT_AN_UPLOAD, the same for every such path, before Gradio copies, hashes or reads it.
    Installed by both ways of serving (web.launch and web.build_app), so they follow one rule."""

    def __init__(self, app, upload_dir: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES):
        self.app, self.upload_dir, self.max_bytes = app, upload_dir, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"").lower()
        if scope["type"] != "http" or scope.get("method") != "POST" or content_type.startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await respond(
                    send, 413, f"An API call may carry at most {self.max_bytes // 2**10} KB; upload files first."
                )
                return
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None  # not JSON: whoever handles the route refuses it
        if any(not ("path" in ref and is_upload(ref["path"], self.upload_dir)) for ref in _file_references(payload)):
            await respond(send, 400, NOT_AN_UPLOAD)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
