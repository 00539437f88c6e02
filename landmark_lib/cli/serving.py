"""The options of `landmark checksums` and `landmark serve` (the web app and the REST API)."""

from __future__ import annotations

from pathlib import Path

from .. import bundle
from ..cli_args import add_threads, threshold_arg
from ..recognition import DEFAULT_THRESHOLD
from .command import GALLERY_HELP, SPEC_HELP, command


def add_serving(commands) -> None:
    p = command(
        commands,
        "checksums",
        "landmark_lib.artifacts.checksums:run",
        "record the sha256 of an export folder's files in its export.json (only for files you trust)",
    )
    p.add_argument("folder", type=Path, help="export folder holding export.json")
    p = command(
        commands,
        "serve",
        "landmark_lib.serve.server:run",
        "the web app and the REST API (/v1/tag, docs at /docs): a photo in, the landmark and its place out",
    )
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        default=None,
        help=f"minimum top probability to name a landmark, 0..1 (default: export.json's, else {DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--host",
        default=None,
        help="interface to listen on (default: $GRADIO_SERVER_NAME, else 0.0.0.0 on a Space, else 127.0.0.1)",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument(
        "--share",
        action="store_true",
        help="serve the page alone (no REST API) on Gradio's own server, through a temporary public gradio.live link",
    )
    p.add_argument(
        "--api-only",
        action="store_true",
        help="serve the REST API alone (no page): never imports Gradio, so it starts faster and takes less memory",
    )
    p.add_argument("--gallery", type=Path, default=None, help=GALLERY_HELP)
    p.add_argument(
        "--backend",
        choices=bundle.BACKENDS,
        default="auto",
        help="auto: the fastest file the export verified (model.int8.onnx, then model.onnx via ONNX Runtime), else model.pt",
    )
    add_threads(p)
