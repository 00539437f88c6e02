"""How much and how fast clients may upload photos (Gradio's upload route and POST /v1/tag), as one ASGI middleware.

Nobody can spend the quota without sending bytes (bytes are charged as they arrive, and given back when the request
is refused or abandoned), hold a connection open without sending (a body must keep arriving), or take every
connection from one address (a few uploads at once per client).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from typing import Any

PER_CLIENT_BYTES = 500 * 2**20  # uploads one client may send per window: ~50 big phone photos in 10 minutes
TOTAL_BYTES = 4 * 2**30  # all clients together per window, so many addresses cannot fill the disk either
QUOTA_PATHS = ("/upload", "/v1/tag")  # Gradio's upload route and the REST API's: both carry photos
WINDOW_S = 600  # equal to the age after which Gradio's cache cleanup deletes unanswered uploads (web.DELETE_CACHE)
PER_CLIENT_UPLOADS = 8  # uploads of one client in progress at once (a browser sends one request per photo batch)
IDLE_S = 10.0  # a body that sends nothing for this long is ended
GRACE_S = 20.0  # ... and after this long, one arriving slower than MIN_RATE is ended too
MIN_RATE = 32 * 2**10  # bytes per second on average: a 50 MB photo over the slowest mobile link still arrives


def client_key(scope: dict) -> str:
    """The client an upload counts against: the peer address, or behind the Hugging Face proxy (SPACE_ID set) the
    address that proxy appended last to X-Forwarded-For (earlier entries can be forged by the client)."""
    if os.environ.get("SPACE_ID"):
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else "unknown"


class Charge:
    """The bytes one request has been charged, in the window from its start (refund() gives them back)."""

    def __init__(self, quota: UploadQuota, client: str):
        self.quota, self.client, self.start, self.bytes = quota, client, time.monotonic(), 0
        quota.charges.append(self)

    def add(self, size: int) -> str | None:
        """Charge SIZE more bytes; the refusal message instead when that would pass a limit."""
        refusal = self.quota.refusal(self.client, size)
        if refusal is None:
            self.bytes += size
            self.quota.used[self.client] = self.quota.used.get(self.client, 0) + size
            self.quota.total += size
        return refusal

    def refund(self) -> None:
        self.quota.give_back(self.client, self.bytes)
        self.bytes = 0


class UploadQuota:
    """ASGI middleware on the upload routes (QUOTA_PATHS): per window, at most PER_CLIENT bytes per client and TOTAL for
    everyone, charged as bytes arrive and refunded when the request is refused (status >= 400) or abandoned; at most
    PER_CLIENT_UPLOADS requests of one client at once; a body idle for IDLE_S, or slower than MIN_RATE after GRACE_S,
    is ended with 408. Answers are JSON {"detail": one sentence}."""

    def __init__(
        self,
        app,
        per_client: int = PER_CLIENT_BYTES,
        total: int = TOTAL_BYTES,
        window_s: float = WINDOW_S,
        per_client_uploads: int = PER_CLIENT_UPLOADS,
        timing: tuple[float, float, float] = (IDLE_S, GRACE_S, MIN_RATE),
    ):
        self.app, self.per_client, self.total_limit, self.window_s = app, per_client, total, window_s
        self.per_client_uploads, (self.idle_s, self.grace_s, self.min_rate) = per_client_uploads, timing
        self.charges: deque[Charge] = deque()
        self.used: dict[str, int] = {}
        self.total = 0
        self.active: dict[str, int] = {}

    def give_back(self, client: str, size: int) -> None:
        self.used[client] = self.used.get(client, 0) - size
        self.total -= size
        if not self.used[client]:
            del self.used[client]

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.window_s
        while self.charges and self.charges[0].start < cutoff:
            self.charges.popleft().refund()

    def refusal(self, client: str, size: int) -> str | None:
        """Why SIZE more bytes from CLIENT are refused now (None: they fit). The total's message blames nobody."""
        self._expire()
        minutes = f"{self.window_s / 60:.0f} minutes"
        if self.used.get(client, 0) + size > self.per_client:
            return (
                f"Upload limit reached: your address sent {self.per_client // 2**20} MB of photos in the last {minutes}; "
                "wait a few minutes and try again."
            )
        if self.total + size > self.total_limit:
            return (
                f"The server has taken all the uploads it can keep for {minutes} (from all users together); "
                "try again in a few minutes."
            )
        return None

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
        refusal = self.refusal(client, declared)  # a declared size that cannot fit is refused at once, uncharged
        if refusal is None and self.active.get(client, 0) >= self.per_client_uploads:
            refusal = f"Too many uploads at once from your address (at most {self.per_client_uploads}); wait for them to finish."
        if refusal is not None:
            await respond(send, 429, refusal)
            return
        self.active[client] = self.active.get(client, 0) + 1
        try:
            await self._guarded(scope, receive, send, Charge(self, client))
        finally:
            self.active[client] -= 1
            if not self.active[client]:
                del self.active[client]

    async def _guarded(self, scope, receive, send, charge: Charge) -> None:
        """Run the app with the body charged and timed; refund unless the app accepted the upload."""
        state: dict[str, Any] = {
            "status": None,
            "ended": None,
            "complete": False,
        }  # ended: (status, refusal) that cut the body off
        start = time.monotonic()

        async def timed_receive():
            if state["ended"]:
                return {"type": "http.disconnect"}
            if state["complete"]:  # after the body: e.g. a response listening for the client's disconnect
                return await receive()
            deadline = start + self.grace_s + charge.bytes / self.min_rate
            wait = min(self.idle_s, max(0.0, deadline - time.monotonic()))
            try:
                message = await asyncio.wait_for(receive(), wait)
            except asyncio.TimeoutError:
                state["ended"] = (408, "The upload was too slow and was stopped; send it again on a faster connection.")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                refusal = charge.add(len(message.get("body", b"")))
                if refusal is not None:
                    state["ended"] = (429, refusal)
                    return {"type": "http.disconnect"}  # the parser stops: this upload is dropped unfinished
                state["complete"] = not message.get("more_body", False)
            return message

        async def watched_send(message):
            if state["ended"]:
                return  # the app's answer to the cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except Exception:
            if not state["ended"]:
                raise  # the app's own failure; a cut-off body's ClientDisconnect is expected
        finally:  # refused, abandoned or cut off: the bytes were not kept
            if state["ended"] or state["status"] is None or state["status"] >= 400:
                charge.refund()
        if state["ended"] and state["status"] is None:
            await respond(send, *state["ended"])


async def respond(send, status: int, detail: str) -> None:
    """A JSON {"detail": DETAIL} answer with STATUS (what the REST API answers for every refusal)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (429, 503):
        headers.append((b"retry-after", b"10"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
