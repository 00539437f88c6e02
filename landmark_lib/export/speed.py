"""Which verified file to serve, by measurement: each file's time for one photo at batch 1 (a 640x480 photo, one
thread, preprocessing included, as a server request runs it), recorded in export.json (bundle.SPEED_KEY); 'auto'
serving then takes the fastest (runtime/backends.serving_order)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .. import bundle
from ..preprocess import PreprocessConfig
from ..runtime.backends import Classifier, OnnxPredictor, load_torchscript, probabilities

PHOTO = (480, 640)
REPEATS = 15


def ms_per_photo(model: Classifier, repeats: int = REPEATS) -> float:
    """Median milliseconds of MODEL on one 640x480 photo (after two warm-up calls)."""
    image = np.random.default_rng(0).integers(0, 256, (3, *PHOTO), dtype=np.uint8)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        probabilities(model, [image])
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def measure(out: Path, preprocess: PreprocessConfig) -> dict:
    """export.json's SPEED_KEY entry for the files in OUT: {ms_per_photo: {backend: ms}, served: the fastest}."""
    threads = torch.get_num_threads()
    try:
        models = {"torchscript": load_torchscript(out / bundle.MODEL_FILE, num_threads=1)}
        for backend, (_, file) in bundle.ONNX_BACKENDS.items():
            if (out / file).is_file():
                models[backend] = OnnxPredictor(out / file, preprocess, preprocess_path=out / bundle.PREPROCESS_FILE)
        times = {backend: ms_per_photo(model) for backend, model in models.items()}
    finally:
        torch.set_num_threads(threads)
    return {
        "how": f"median of {REPEATS} calls, one {PHOTO[1]}x{PHOTO[0]} photo (uint8 array) at batch 1, 1 thread, "
        "preprocessing included (landmark_lib/export/speed.py)",
        "ms_per_photo": times,
        "served": min(times, key=lambda backend: times[backend]),
    }
