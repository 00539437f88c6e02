"""model.pt2: the LandmarkPredictor as a torch.export ExportedProgram (torch's successor to TorchScript), with dynamic
photo height and width, loadable with torch.export.load and nothing else.

The program runs the same Preprocess module model.pt scripts and preprocess.onnx is exported from: its resize is
integer arithmetic on the shape, which torch.export keeps symbolic, so one program serves photos of any size with
exactly model.pt's pixels. The class metadata travels as labels.json inside the file (extra_files).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import bundle
from ..predictor import LandmarkPredictor
from ..preprocess_config import MAX_SIDE
from .checks import TOLERANCE, ExportError, eager_probabilities

LABELS_ENTRY = bundle.LABELS_FILE  # extra_files name: torch.export.load(path, extra_files={"labels.json": ""})


class ExportablePredictor(nn.Module):
    """uint8 RGB [3, H, W] -> probabilities [num_classes], exactly LandmarkPredictor.forward."""

    def __init__(self, predictor: LandmarkPredictor):
        super().__init__()
        self.preprocess = predictor.preprocess  # the one definition: torch.export keeps its sizes symbolic
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
