"""What tests build on the fly (no network, no ../shared): photos, datasets, run folders, exports, a free port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landmark_lib import bundle
from landmark_lib.artifacts import checksums
from landmark_lib.artifacts.export_info import ExportInfo
from landmark_lib.artifacts.export_info import write as export_write
from landmark_lib.artifacts.run_folder import RunConfig
from landmark_lib.export.torchscript import save, to_torchscript
from landmark_lib.labels import ClassInfo, write_labels
from landmark_lib.models import ModelSpec
from landmark_lib.models.scratch import LandmarkNet
from landmark_lib.models.trained import build_model, save_weights
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.preprocess import PreprocessConfig

REPO_ROOT = Path(__file__).resolve().parents[1]

CLASSES = [
    ClassInfo("taj_mahal", "Taj Mahal", "Agra", "India", 27.175, 78.042),
    ClassInfo("colosseum", "Colosseum", "Rome", "Italy", 41.890, 12.492),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
    ClassInfo("machu_picchu", "Machu Picchu", "Aguas Calientes", "Peru", -13.163, -72.545),
    ClassInfo("st_stephens_cathedral", "St. Stephen's Cathedral", "Vienna", "Austria", 48.208, 16.373),
    ClassInfo("mystery_place", "Mystery Place"),
]
SMALL_SCRATCH = ModelSpec("scratch", {"width": 0.25, "depth": 1})  # a scratch CNN that runs in milliseconds
# A bias on the first class makes the random net confident (~0.6) about it, so thresholds can be tested both ways.
FIRST_CLASS_BIAS = 2.0
COLOURS = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 200, 40), (160, 60, 200), (40, 200, 200)]


def make_photo(width: int = 120, height: int = 80, seed: int = 0) -> Image.Image:
    """An asymmetric RGB 'photo' (gradient + off-centre block): rotating or flipping it changes the prediction."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1).astype(
        np.uint8
    )
    pixels[height // 8 : height // 2, width // 10 : width // 3] = rng.integers(0, 256, 3, dtype=np.uint8)
    return Image.fromarray(pixels)


def class_photo(class_index: int, rng: np.random.Generator, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A noisy 'photo' whose class is told by the colour and position of a block: easy to learn, not constant."""
    width, height = size
    pixels = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    colour = np.array(COLOURS[class_index % len(COLOURS)], dtype=np.int16)
    top = (class_index * 7) % max(1, height // 2)
    pixels[top : top + height // 2, width // 4 : 3 * width // 4] = np.clip(colour + rng.integers(-25, 25, 3), 0, 255)
    return Image.fromarray(pixels)


def make_dataset(
    root: Path,
    classes: int | list[str] = 3,
    train_per_class: int = 12,
    test_per_class: int = 4,
    seed: int = 0,
    sizes: list[tuple[int, int]] | None = None,
    suffix: str = ".jpg",
) -> Path:
    """root/{train,test}/<class>/NNN.jpg of class_photo()s; a split with 0 photos per class is not created.

    CLASSES: a count (folders 00.Landmark_A, 01.Landmark_B, ... like the course layout) or the folder names.
    SIZES: (width, height) of the photos in each class folder, in turn (default: random, 64-120 px).
    """
    rng = np.random.default_rng(seed)
    names = [f"{c:02d}.Landmark_{chr(65 + c)}" for c in range(classes)] if isinstance(classes, int) else classes
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c, name in enumerate(names if count else []):
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = sizes[i % len(sizes)] if sizes else (int(rng.integers(64, 120)), int(rng.integers(64, 120)))
                photo = class_photo(c, rng, size)
                photo.save(folder / f"{i:03d}{suffix}", **({"quality": 90} if suffix == ".jpg" else {}))
    return Path(root)


def make_run(
    run_dir: Path,
    spec: ModelSpec = SMALL_SCRATCH,
    classes: list[ClassInfo] = CLASSES[:3],
    input_size: int = 64,
    args: dict | None = None,
    weights: bool = True,
) -> Path:
    """A run folder as `landmark train` writes it: config.json and model.safetensors (seed 0, with non-trivial
    BatchNorm statistics, so a traced graph that mishandled eval mode would show). WEIGHTS=False: config only."""
    config = RunConfig(model=spec, classes=classes, preprocess=PreprocessConfig(input_size=input_size), args=args or {})
    config.save(run_dir)
    if weights:
        torch.manual_seed(0)
        model = build_model(config)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        save_weights(model, run_dir)
    return run_dir


def tiny_net(classes: list[ClassInfo] | None = None, bias_class: int = 0) -> LandmarkNet:
    """The network of export_tiny_model (the same weights every call), confident about class BIAS_CLASS."""
    classes = classes or CLASSES
    torch.manual_seed(0)
    net = LandmarkNet(len(classes), width=0.25, depth=1).eval()
    with torch.no_grad():
        net.head[-1].bias[bias_class] += FIRST_CLASS_BIAS
    return net


def export_tiny_model(
    folder: Path, export_info: dict | None = None, classes: list[ClassInfo] | None = None, bias_class: int = 0
) -> Path:
    """folder/{model.pt, labels.json, export.json}, the model.pt made by the real exporter (traced net, scripted
    wrapper) without its slow self-check; the net is made confident about class BIAS_CLASS (of CLASSES by default).
    export.json records the files' sha256, as the exporter does."""
    classes = classes or CLASSES
    net = tiny_net(classes, bias_class)
    preprocess = PreprocessConfig(input_size=64)
    folder.mkdir(parents=True, exist_ok=True)
    save(to_torchscript(LandmarkPredictor(net, preprocess, classes).eval()), folder / bundle.MODEL_FILE)
    write_labels(folder / bundle.LABELS_FILE, classes)
    info = export_info or {"model": "scratch", "num_classes": len(classes), "preprocess": preprocess.to_dict()}
    export_write(folder, ExportInfo.from_dict({**info, "files": checksums.record(folder)}))
    return folder


def free_port() -> int:
    """A loopback port nothing listens on (for servers the tests start, or for 'connection refused')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def cli_error(capsys, *argv: str) -> str:
    """`landmark ARGV` must fail as an expected failure: exit status 2 and one line on stderr besides the progress bars
    of work done before the failure; returns that line."""
    from landmark_lib.cli import main

    assert main(list(argv)) == 2
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if "%|" not in line).strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# A pretrained Lite0 with only its last stage training, at 64 px and batch 8: the smallest real fast-path run.
TINY_LITE0_PARTIAL = [
    "--model",
    "timm:tf_efficientnet_lite0",
    "--strategy",
    "partial",
    "--train-stages",
    "1",
    "--input-size",
    "64",
    "--batch-size",
    "8",
    "--num-workers",
    "0",
    "--feature-views",
    "1",
]


def run_python(code: str, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """CODE with ARGS in a fresh interpreter from the repository root, this checkout's landmark_lib first on the path
    (what a new server or tool process sees: which modules it imports, how much memory it takes)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env or {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Training through train_accelerate.py in a fresh process, as users run it: a tiny scratch CNN on a few photos.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_DISABLE_RICH": "1"}
TINY_SCRATCH = [
    "--input-size",
    "48",
    "--width",
    "0.25",
    "--depth",
    "1",
    "--batch-size",
    "8",
    "--num-workers",
    "0",
    "--lr",
    "3e-3",
]


def run_train(
    args: list[str], cache: Path, launcher: list[str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess:
    command = (
        (launcher or [sys.executable]) + [str(REPO_ROOT / "train_accelerate.py"), "--cache-dir", str(cache)] + args
    )
    return subprocess.run(command, cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout)


def save_photo(path: Path, seed: int = 0, gps: tuple[float, float] | None = None, taken: str | None = None) -> Path:
    """A make_photo JPEG at PATH with EXIF GPS (signed decimal degrees) and DateTimeOriginal ('2024:05:01 10:00:00')."""
    from PIL import ExifTags

    exif = Image.Exif()
    if gps is not None:
        dms = [(int(abs(v)), int(abs(v) * 60 % 60), round(abs(v) * 3600 % 60, 4)) for v in gps]
        refs = ("N" if gps[0] >= 0 else "S", "E" if gps[1] >= 0 else "W")
        exif[ExifTags.IFD.GPSInfo] = {1: refs[0], 2: dms[0], 3: refs[1], 4: dms[1]}
    if taken is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    path.parent.mkdir(parents=True, exist_ok=True)
    make_photo(80, 60, seed).save(path, exif=exif)
    return path


def exiftool(*paths: Path) -> list[dict]:
    """What ExifTool (the reader Immich and PhotoPrism use) reads from PATHS: `exiftool -j -n`, numbers as numbers."""
    result = subprocess.run(["exiftool", "-j", "-n", *map(str, paths)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def start_uvicorn(app, host: str = "127.0.0.1"):
    """APP on uvicorn in a daemon thread on a free port of HOST: (base URL, server); set server.should_exit to stop."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return f"http://{host}:{port}", server
