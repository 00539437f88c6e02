"""`landmark serve` (and `python app.py`): one process serving the REST API under /v1 and the Gradio page at /.

The REST API answers as soon as the model is loaded; importing Gradio takes seconds, so the page is built in a
thread and mounted when it is ready (until then / answers 503 with a page that reloads itself). `--api-only` never
imports Gradio. This module imports no Gradio itself: web.py (the page) is imported only when the page is built.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import threading
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import threads
from ..errors import LandmarkError
from .api_app import API_PREFIX, CONCURRENCY, build_api_app
from .service import LandmarkService

STARTING_PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="1">
<title>Landmark Tagger is starting</title></head><body style="font-family: sans-serif; margin: 3em">
<h1>Landmark Tagger is starting</h1><p>The page is loading (a few seconds); it reloads itself. The REST API already
answers: <a href="/docs">/docs</a>.</p>{error}</body></html>"""


class PageSlot:
    """The ASGI app mounted at /: the Gradio page once attach() has started it, a self-reloading 503 before."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.error: str | None = None  # why the page could not be built (the API keeps serving)
        self._lifespan: contextlib.AbstractAsyncContextManager | None = None

    async def attach(self, app: FastAPI) -> None:
        """Start APP's lifespan (Gradio's queue and startup events) in the server's loop, then route / to it."""
        self._lifespan = app.router.lifespan_context(app)
        await self._lifespan.__aenter__()
        self.app = app

    async def close(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.__aexit__(None, None, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            error = f"<p>The page failed to start: {html.escape(self.error)}</p>" if self.error else ""
            headers = {"Retry-After": "1"}
            await HTMLResponse(STARTING_PAGE.format(error=error), status_code=503, headers=headers)(
                scope, receive, send
            )
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later


def _build_page(service: LandmarkService) -> FastAPI:
    """The Gradio page as an ASGI app of its own (imports Gradio: seconds)."""
    import gradio as gr

    from .web import MAX_FILE_SIZE, build_demo

    demo = build_demo(service)
    page = gr.mount_gradio_app(FastAPI(), demo, path="", max_file_size=MAX_FILE_SIZE)
    demo.has_launched = True  # mounted, never launch()ed: Gradio's own upload-folder check runs only on launched apps
    return page


def staged_app(service: LandmarkService, api_only: bool = False, log=print) -> FastAPI:
    """The API answering at once; unless API_ONLY, the page built in a thread when the server starts and mounted at /
    when ready. LOG(line) reports when the page is up."""
    api = build_api_app(service)
    if api_only:
        return api
    slot = PageSlot()
    api.mount("", slot)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop, start = asyncio.get_running_loop(), time.monotonic()

        def build() -> None:
            try:
                page = _build_page(service)
            except Exception as error:  # noqa: BLE001 - the API keeps serving; the page says what went wrong
                slot.error = f"{type(error).__name__}: {error}"
                log(f"error: the page could not be built ({slot.error}); the REST API keeps serving")
                return
            asyncio.run_coroutine_threadsafe(slot.attach(page), loop).result()
            log(f"page ready after {time.monotonic() - start:.1f} s")

        threading.Thread(target=build, name="build-page", daemon=True).start()
        try:
            yield
        finally:
            await slot.close()

    api.router.lifespan_context = lifespan
    return api


def serve(service: LandmarkService, host: str, port: int | None, share: bool = False, api_only: bool = False) -> None:
    """Serve the REST API (and the page) on HOST:PORT until interrupted (with SHARE, Gradio's own server, which can
    open a gradio.live link, serves the page alone)."""
    if share:
        from .web import build_demo, launch

        launch(build_demo(service), host, port, share=True)
        return
    import uvicorn

    port = port or 7860
    where = f"http://{host}:{port}"
    page = "" if api_only else f"; the page at {where}/ once Gradio has loaded"
    print(f"Serving the REST API on {where}{API_PREFIX} now (docs: {where}/docs){page}", flush=True)
    app = staged_app(service, api_only, log=lambda line: print(line, flush=True))
    uvicorn.run(app, host=host, port=port, log_level="warning")


def env_port(value: str | None) -> int | None:
    """$GRADIO_SERVER_PORT as a port number (None when unset); a bad value stops with one sentence."""
    if value is None or value == "":
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise LandmarkError(
            f"GRADIO_SERVER_PORT must be a port number between 1 and 65535, got {value!r}; fix or unset it."
        )
    return int(value)


def default_host() -> str:
    """$GRADIO_SERVER_NAME, else 0.0.0.0 on a Hugging Face Space, else 127.0.0.1."""
    return os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")


def run(args: argparse.Namespace) -> None:
    """`landmark serve`: load the model once, then serve the REST API at once and the page when it is ready."""
    host = args.host or default_host()
    port = args.port if args.port is not None else env_port(os.environ.get("GRADIO_SERVER_PORT"))
    if args.share and args.api_only:
        raise LandmarkError("--share serves the page alone and --api-only the API alone; choose one.")
    service = LandmarkService.from_spec(
        args.model,
        threshold=args.threshold,
        num_threads=threads.per_request(CONCURRENCY),
        backend=args.backend,
        gallery=getattr(args, "gallery", None),
    )
    print(service.startup_line(), flush=True)
    if service.hub_source:  # the commit actually served, whatever branch or tag was asked for
        print("serving {} at commit {}".format(*service.hub_source))
    serve(service, host, port, share=args.share, api_only=args.api_only)
