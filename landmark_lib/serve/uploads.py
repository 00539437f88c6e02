"""What the public app may read and keep: only files inside Gradio's upload cache, deleted shortly after their
answer, and a bounded amount of uploads per client.

A REST call can name any server path as the photo (a plain {"path": ...} skips Gradio's own upload-folder check),
and uploads otherwise stay on disk with their EXIF GPS until the server restarts.
"""

from __future__ import annotations

import heapq
import json
import os
import stat
import threading
import time
from collections import deque
from pathlib import Path

# The one answer for any path that is not a readable upload, whether or not it exists (nothing can be probed).
NOT_AN_UPLOAD = (
    "This app only reads photos uploaded to it: upload the photo file, or over the API POST it to /gradio_api/upload "
    'and pass the returned path as {"path": PATH, "meta": {"_type": "gradio.FileData"}}; URLs and base64 data are not accepted.'
)
MAX_FILE_BYTES = 50 * 2**20  # one photo, on the page and the REST API: larger than any phone photo
MAX_FILE_SIZE = f"{MAX_FILE_BYTES // 2**20}mb"  # the same, as Gradio's max_file_size takes it
PER_CLIENT_BYTES = 500 * 2**20  # uploads one client may send per window: ~50 big phone photos in 10 minutes
TOTAL_BYTES = 4 * 2**30  # all clients together per window, so many addresses cannot fill the disk either
QUOTA_PATHS = ("/upload", "/v1/tag")  # Gradio's upload route and the REST API's: both carry photos
WINDOW_S = 600  # equal to the age after which Gradio's cache cleanup deletes unanswered uploads (app.DELETE_CACHE)


class UploadRefused(ValueError):
    """A photo path that is not a file uploaded to this app; the message is always NOT_AN_UPLOAD."""


def read_upload(path: str, upload_dir: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of PATH, only if it is a regular file of at most MAX_BYTES inside UPLOAD_DIR (after resolving links).

    Anything else (outside the folder, missing, a link, a FIFO or device, too big) raises UploadRefused with the same
    message; a path outside the folder is refused before the filesystem is touched.
    """
    root = Path(os.path.realpath(upload_dir))
    lexical = Path(os.path.abspath(path))
    if not path or root not in lexical.parents:
        raise UploadRefused(NOT_AN_UPLOAD)
    try:
        if root not in Path(os.path.realpath(lexical)).parents:
            raise UploadRefused(NOT_AN_UPLOAD)
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


def client_key(scope: dict) -> str:
    """The client an upload counts against: the peer address, or behind the Hugging Face proxy (SPACE_ID set) the
    address that proxy appended last to X-Forwarded-For (earlier entries can be forged by the client)."""
    if os.environ.get("SPACE_ID"):
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else "unknown"


class UploadQuota:
    """ASGI middleware: refuses (HTTP 429) uploads beyond PER_CLIENT bytes per client and TOTAL bytes for everyone
    within WINDOW_S seconds, counting the bytes as they arrive (a missing or false Content-Length does not help)."""

    def __init__(self, app, per_client: int = PER_CLIENT_BYTES, total: int = TOTAL_BYTES, window_s: float = WINDOW_S):
        self.app, self.per_client, self.total, self.window_s = app, per_client, total, window_s
        self.events: deque[tuple[float, str, int]] = deque()
        self.used: dict[str, int] = {}

    def _charge(self, client: str, size: int) -> bool:
        now = time.monotonic()
        while self.events and self.events[0][0] < now - self.window_s:
            _, old, old_size = self.events.popleft()
            self.used[old] -= old_size
            if not self.used[old]:
                del self.used[old]
        if self.used.get(client, 0) + size > self.per_client or sum(self.used.values()) + size > self.total:
            return False
        self.events.append((now, client, size))
        self.used[client] = self.used.get(client, 0) + size
        return True

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").rstrip("/").endswith(QUOTA_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        client = client_key(scope)
        declared = next((int(v) for k, v in scope.get("headers", []) if k == b"content-length" and v.isdigit()), 0)
        if not self._charge(client, declared):
            await _too_many(send, self.per_client, self.window_s)
            return

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                extra = len(message.get("body", b""))
                nonlocal declared
                if declared >= extra:
                    declared -= extra
                elif not self._charge(client, extra - declared):
                    return {"type": "http.disconnect"}  # the parser stops: this upload is dropped unfinished
                else:
                    declared = 0
            return message

        await self.app(scope, counted_receive, send)


async def _too_many(send, per_client: int, window_s: float) -> None:
    body = json.dumps(
        {
            "detail": (
                f"Upload limit reached: at most {per_client // 2**20} MB of photos per {window_s / 60:.0f} minutes; wait and try again."
            )
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
