"""model.pt2: the LandmarkPredictor as a torch.export ExportedProgram (torch's successor to TorchScript), with dynamic
photo height and width, loadable with torch.export.load and nothing else.

The eager preprocessing decides the resize with Python numbers, which torch.export would freeze to the example
photo's size; DynamicPreprocess computes the same sizes (Python's round, half to even) as symbolic expressions, so
one program serves photos of any size. The class metadata travels as labels.json inside the file (extra_files).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .. import bundle
from ..predictor import LandmarkPredictor
from ..preprocess import Preprocess
from .checks import TOLERANCE, ExportError, eager_probabilities

MAX_SIDE = 16384  # the largest photo side the program accepts (the app's decoder bounds pixels well below this)
LABELS_ENTRY = bundle.LABELS_FILE  # extra_files name: torch.export.load(path, extra_files={"labels.json": ""})


def _round_half_even(value):
    """Python's round() for a symbolic float, from the ops torch.export can save (it cannot save round itself)."""
    nearest = math.trunc(value + 0.5)
    tie = (value + 0.5 == nearest) & (nearest % 2 == 1)
    return torch.sym_ite(tie, nearest - 1, nearest)


class DynamicPreprocess(nn.Module):
    """Preprocess (same buffers, same result) written without size-dependent Python branches."""

    if TYPE_CHECKING:  # for mypy only: TorchScript resolves class annotations itself and cannot resolve these
        mean: torch.Tensor
        std: torch.Tensor

    def __init__(self, preprocess: Preprocess):
        super().__init__()
        self.input_size, self.resize_size, self.mode = preprocess.input_size, preprocess.resize_size, preprocess.mode
        self.register_buffer("mean", preprocess.mean.clone())
        self.register_buffer("std", preprocess.std.clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.unsqueeze(0).to(torch.float32)
        height, width = x.shape[-2], x.shape[-1]
        scale = float(self.resize_size) / torch.sym_float(torch.sym_min(height, width))
        new_h = torch.sym_max(self.input_size, _round_half_even(torch.sym_float(height) * scale))
        new_w = torch.sym_max(self.input_size, _round_half_even(torch.sym_float(width) * scale))
        # resizing to the same size is the identity, so the eager code's "skip when equal" branch is not needed
        x = F.interpolate(x, size=[new_h, new_w], mode=self.mode, align_corners=False, antialias=True)
        top, left = (new_h - self.input_size) // 2, (new_w - self.input_size) // 2
        x = x[:, :, top : top + self.input_size, left : left + self.input_size].clamp(0.0, 255.0)
        return (x - self.mean) / self.std


class ExportablePredictor(nn.Module):
    """uint8 RGB [3, H, W] -> probabilities [num_classes], exactly LandmarkPredictor.forward."""

    def __init__(self, predictor: LandmarkPredictor):
        super().__init__()
        self.preprocess = DynamicPreprocess(predictor.preprocess)
        self.model = predictor.model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(self.preprocess(image)).float(), dim=-1)[0]


def export_pt2(eager: LandmarkPredictor, out: Path, images: list[torch.Tensor]) -> dict:
    """OUT/model.pt2, checked against EAGER on IMAGES (removed again if it drifts); what export.json records."""
    path = out / bundle.PT2_FILE
    height, width = torch.export.Dim("height", min=2, max=MAX_SIDE), torch.export.Dim("width", min=2, max=MAX_SIDE)
    example = torch.zeros(3, 97, 131, dtype=torch.uint8)  # odd sizes: no accidental specialisation
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # export's own notes about symbolic shapes
        program = torch.export.export(
            ExportablePredictor(eager).eval(), (example,), dynamic_shapes={"image": {1: height, 2: width}}
        )
    labels = (out / bundle.LABELS_FILE).read_text(encoding="utf-8")
    torch.export.save(program, str(path), extra_files={LABELS_ENTRY: labels})
    checked = [image for image in images if min(image.shape[1:]) >= 2]
    try:
        max_abs_diff = _max_diff(path, eager, checked)
    except Exception as error:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"{path} does not load and run with torch.export.load ({type(error).__name__}: {error})."
        ) from error
    if max_abs_diff > TOLERANCE:
        path.unlink()
        raise ExportError(
            f"model.pt2 differs from the eager model by {max_abs_diff:.2e} in probability (tolerance {TOLERANCE:g}), "
            "so it was removed: do not ship it."
        )
    return {
        "file": bundle.PT2_FILE,
        "input": f"uint8 RGB tensor [3, H, W], 2 <= H, W <= {MAX_SIDE} (dynamic)",
        "output": "float32 probabilities [num_classes]",
        "labels": f"extra_files['{LABELS_ENTRY}'] of torch.export.load, the same as labels.json",
        "max_abs_diff": max_abs_diff,
        "check_images": len(checked),
    }


def _max_diff(path: Path, eager: LandmarkPredictor, images: list[torch.Tensor]) -> float:
    extra = {LABELS_ENTRY: ""}
    module = torch.export.load(str(path), extra_files=extra).module()
    if [c["name"] for c in json.loads(extra[LABELS_ENTRY])] != eager.class_names:
        raise ExportError(f"{path} carries different class names than the run.")
    with torch.no_grad():
        probs = torch.stack([module(image) for image in images])
    return float((probs - eager_probabilities(eager, images)).abs().max())
