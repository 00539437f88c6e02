"""model.pt: the LandmarkPredictor (preprocessing, network, softmax, class metadata) as one TorchScript file that
needs only torch, checked in a fresh torch-only interpreter.

The inner network is traced (many timm models do not script); the wrapper is scripted so its preprocessing keeps
handling photos of any size.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from ..predictor import LandmarkPredictor
from .checks import TOLERANCE, ExportError, eager_embeddings, eager_probabilities

# Runs in a fresh interpreter without the project on the path: proves a server needs nothing but torch.
_TORCH_ONLY_CHECK = """
import sys, torch
torch.set_num_threads(1)  # a handful of photos; one thread avoids fighting the exporting process for cores
model = torch.jit.load(sys.argv[1], map_location="cpu").eval()
images = torch.load(sys.argv[2])
with torch.no_grad():
    single = torch.stack([model(image) for image in images])
    batch = model.forward_batch(images)
    with_embedding = model.forward_batch_with_embedding(images)
extra = sorted(m for m in ("landmark_lib", "timm") if m in sys.modules)
assert not extra, f"the exported model imported {extra}"
torch.save({"single": single, "batch": batch, "probs2": with_embedding[0], "embedding": with_embedding[1],
            "class_names": list(model.class_names)}, sys.argv[3])
"""


def to_torchscript(predictor: LandmarkPredictor) -> torch.jit.ScriptModule:
    """Trace the network on one [1, 3, S, S] crop, then script the wrapper around it."""
    size = predictor.preprocess.input_size
    scripted_copy = copy.deepcopy(predictor).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # torch marks TorchScript deprecated; it is still the format servers load
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # verified below on other batch sizes
        example = torch.rand(1, 3, size, size)
        scripted_copy.model = torch.jit.trace(scripted_copy.model, example, check_trace=False)
        scripted_copy.with_embedding = torch.jit.trace(scripted_copy.with_embedding, example, check_trace=False)
        return torch.jit.script(scripted_copy)


def compare_in_fresh_process(model_file: str | Path, eager: LandmarkPredictor, images: list[torch.Tensor]) -> float:
    """Max |difference| between the file (run by a torch-only interpreter) and the eager predictor, over the
    probabilities of forward, forward_batch and forward_batch_with_embedding and the embeddings."""
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        torch.save(images, Path(tmp) / "images.pt")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(
            [
                sys.executable,
                "-W",
                "ignore",
                "-c",
                _TORCH_ONLY_CHECK,
                str(Path(model_file).resolve()),
                "images.pt",
                "out.pt",
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no error output"])[-1]
            raise ExportError(f"{model_file} does not load and run with torch alone ({last_line}).")
        outputs = torch.load(Path(tmp) / "out.pt")
        if outputs["class_names"] != eager.class_names:
            raise ExportError(f"{model_file} carries different class names than the run.")
        expected = eager_probabilities(eager, images)
        embedding = eager_embeddings(eager, images)
        diffs = [(outputs[k] - expected).abs().max() for k in ("single", "batch", "probs2")]
        return float(max(*diffs, (outputs["embedding"] - embedding).abs().max()))


def verify(
    scripted: torch.jit.ScriptModule, model_file: Path, eager: LandmarkPredictor, images: list[torch.Tensor]
) -> float:
    """Batch of 8 works, and the saved file reproduces the eager probabilities within TOLERANCE; returns the max diff."""
    with torch.no_grad():
        if scripted.forward_batch(images[:1] * 8).shape != (8, len(eager.class_names)):
            raise ExportError("The exported forward_batch does not return [8, num_classes] for a batch of 8.")
    max_abs_diff = compare_in_fresh_process(model_file, eager, images)
    if max_abs_diff > TOLERANCE:
        raise ExportError(
            f"The exported model differs from the eager one by {max_abs_diff:.2e} in probability (tolerance {TOLERANCE:g}), "
            "so model.pt was removed: do not ship it (the network does not trace faithfully)."
        )
    return max_abs_diff


def save(scripted: torch.jit.ScriptModule, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save is marked deprecated; it is still our format
        torch.jit.save(scripted, str(path))
