"""The REST API as `landmark serve` runs it: the app's request limits (concurrency, queue), the upload guards, and JSON
404/405 answers for /v1 paths no route takes (the page mounted at / must not answer for the API). Shared by the staged
server (server.py) and the page-ready app (web.build_app), without importing Gradio."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .rest import build_api
from .service import LandmarkService
from .upload_limits import UploadQuota
from .uploads import UploadsOnly
from .work import CONCURRENCY

MAX_QUEUE = 64
API_PREFIX = "/v1"


class ApiFallback:
    """What /v1/... answers when no route matched: 405 (with Allow) for a path the API has under other methods, else
    404, both as the API's JSON {"detail": one sentence} (the page mounted at / must not answer for the API)."""

    def __init__(self, api: FastAPI):
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]  # the full path (Starlette keeps it; the mount's prefix is in root_path)
        methods = sorted(
            {m for r in self.api.routes if isinstance(r, Route) and r.path == path for m in (r.methods or ())}
        )
        if methods:
            detail = f"{scope.get('method')} is not allowed on {path}; use {' or '.join(methods)}."
            response = JSONResponse({"detail": detail}, status_code=405, headers={"Allow": ", ".join(methods)})
        else:
            detail = f"No such API path {path}; see /docs for the API's paths."
            response = JSONResponse({"detail": detail}, status_code=404)
        await response(scope, receive, send)


def upload_folder() -> str:
    """Where Gradio keeps uploads: gradio.utils.get_upload_folder's rule, restated so that the API starts without
    importing Gradio (seconds); tests/test_app_uploads.py checks the two agree."""
    return os.environ.get("GRADIO_TEMP_DIR") or str((Path(tempfile.gettempdir()) / "gradio").resolve())


def upload_guards() -> list[Middleware]:
    """What every way of serving installs: the upload limits (UploadQuota) and the rule that API calls name uploads
    only (UploadsOnly)."""
    return [Middleware(UploadQuota), Middleware(UploadsOnly, upload_dir=upload_folder())]


def build_api_app(service: LandmarkService) -> FastAPI:
    """The REST API of SERVICE under the upload quota (which counts the page's uploads too), with JSON 404/405 for any
    other /v1 path; the page is mounted on it at / (web.build_app, or PageSlot while the page is still loading)."""
    api = build_api(service, concurrency=CONCURRENCY, waiting=MAX_QUEUE)
    for guard in upload_guards():
        api.add_middleware(guard.cls, *guard.args, **guard.kwargs)
    api.mount(API_PREFIX, ApiFallback(api))
    return api
