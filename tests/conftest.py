"""Shared fixtures: a tiny exported model folder (same format as export.py writes), its service, a live app server."""
from __future__ import annotations

import contextlib
import json
import signal
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landmark_lib import checksums
from landmark_lib.data.folder import ClassInfo
from landmark_lib.export import to_torchscript
from landmark_lib.models.scratch import LandmarkNet
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.preprocess import PreprocessConfig
from landmark_lib.serving import LandmarkService

CLASSES = [
    ClassInfo("taj_mahal", "Taj Mahal", "Agra", "India", 27.175, 78.042),
    ClassInfo("colosseum", "Colosseum", "Rome", "Italy", 41.890, 12.492),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
    ClassInfo("machu_picchu", "Machu Picchu", "Aguas Calientes", "Peru", -13.163, -72.545),
    ClassInfo("st_stephens_cathedral", "St. Stephen's Cathedral", "Vienna", "Austria", 48.208, 16.373),
    ClassInfo("mystery_place", "Mystery Place"),
]
# A bias on the first class makes the random net confident (~0.6) about it, so thresholds can be tested both ways.
FIRST_CLASS_BIAS = 2.0


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail a test that hangs (no pytest-timeout here): SIGALRM after SECONDS."""
    def fail(*_):
        raise TimeoutError(f"test took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: extra intra-op threads only add synchronisation overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(classes: list[ClassInfo] | None = None, bias_class: int = 0) -> LandmarkNet:
    """The network of export_tiny_model (the same weights every call), confident about class BIAS_CLASS."""
    classes = classes or CLASSES
    torch.manual_seed(0)
    net = LandmarkNet(len(classes), width=0.25, depth=1).eval()
    with torch.no_grad():
        net.head[-1].bias[bias_class] += FIRST_CLASS_BIAS
    return net


def export_tiny_model(folder: Path, export_info: dict | None = None, classes: list[ClassInfo] | None = None, bias_class: int = 0) -> Path:
    """folder/{model.pt, labels.json, export.json}, the model.pt made by the real exporter (traced net, scripted wrapper).

    The net is made confident about class BIAS_CLASS (of CLASSES, or of the given CLASSES)."""
    classes = classes or CLASSES
    net = tiny_net(classes, bias_class)
    preprocess = PreprocessConfig(input_size=64)
    predictor = LandmarkPredictor(net, preprocess, classes).eval()
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save is marked deprecated
        torch.jit.save(to_torchscript(predictor), str(folder / "model.pt"))
    labels = [{"name": c.name, "display_name": c.display_name, "city": c.city, "country": c.country, "lat": c.lat, "lon": c.lon} for c in classes]
    (folder / "labels.json").write_text(json.dumps(labels, indent=2), encoding="utf-8")
    info = export_info or {"model": "scratch", "num_classes": len(classes), "preprocess": preprocess.to_dict()}
    (folder / "export.json").write_text(json.dumps({**info, "files": checksums.record(folder)}), encoding="utf-8")
    return folder


def make_photo(width: int = 120, height: int = 80, seed: int = 0) -> Image.Image:
    """An asymmetric RGB 'photo' (gradient + off-centre block): rotating or flipping it changes the prediction."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1).astype(np.uint8)
    pixels[height // 8 : height // 2, width // 10 : width // 3] = rng.integers(0, 256, 3, dtype=np.uint8)
    return Image.fromarray(pixels)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def service(model_dir: Path) -> LandmarkService:
    return LandmarkService(model_dir / "model.pt", num_threads=1)


@pytest.fixture(scope="session")
def app_url(service: LandmarkService) -> Iterator[str]:
    """The Gradio app served on loopback for the whole session (HTTP tests and the browser test share it)."""
    from app import build_demo, launch

    demo = build_demo(service)
    try:
        yield launch(demo, "127.0.0.1", free_port(), block=False)
    finally:
        demo.close()
