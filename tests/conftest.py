"""Shared fixtures: a tiny exported model folder (same format as `landmark export` writes), its service, a live app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from landmark_lib.serve.service import LandmarkService

from helpers import export_tiny_model, free_port, make_run


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """Tiny models on a shared 2-core machine: extra intra-op threads only add synchronisation overhead. The default
    of --threads ($OMP_NUM_THREADS) is 1 too, and what a command chose (threads.use) does not outlive its test."""
    from landmark_lib import threads as thread_count

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(thread_count, "_chosen", None)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run exported by `landmark export --format onnx`: model.pt, model.onnx and preprocess.onnx, verified."""
    from landmark_lib.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("onnx")
    out = tmp / "export"
    assert main(["export", str(make_run(tmp / "run")), "--out", str(out), "--format", "onnx", "--no-eval"]) == 0
    torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def service(model_dir: Path) -> LandmarkService:
    return LandmarkService(model_dir / "model.pt", num_threads=1)


@pytest.fixture(scope="session")
def app_url(service: LandmarkService) -> Iterator[str]:
    """The Gradio app served on loopback for the whole session (HTTP tests and the browser test share it)."""
    from landmark_lib.serve.web import build_demo, launch

    demo = build_demo(service)
    try:
        yield launch(demo, "127.0.0.1", free_port(), block=False)
    finally:
        demo.close()
