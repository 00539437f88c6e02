"""The confidence below which we say "no known landmark", chosen on the run's validation photos (never on test).

A wrong tag costs a photo service more than a missing one, so the threshold is the lowest confidence at which the
landmarks we name are right at least `target_precision` of the time and at most `max_false_accept` of the
no-landmark validation photos get a landmark. The confidence is the best landmark's probability
(landmark_lib.recognition), the same number the server compares with the threshold.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from .. import bundle, threads
from ..artifacts import export_info
from ..artifacts.run_folder import RunConfig
from ..data.run_split import run_split_loader
from ..errors import LandmarkError
from ..metrics import recognition_metrics
from ..models.trained import load_trained_model
from ..recognition import best_landmarks, is_landmark_target
from ..runtime.backends import OnnxPredictor

MIN_THRESHOLD = 0.2  # below this a softmax over ~50 classes says little even when validation is clean


def choose_threshold(
    probs: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
    target_precision: float = 0.95,
    max_false_accept: float = 0.02,
) -> dict:
    """The lowest confidence threshold at which, on these (validation) photos, the landmark photos we name are right
    at least TARGET_PRECISION of the time and at most MAX_FALSE_ACCEPT of the no-landmark photos are named.

    Without no-landmark photos only the precision condition applies (a model trained without a background class).
    """
    confidence, best = (t[:, 0] for t in best_landmarks(probs, class_names))
    landmark = is_landmark_target(targets, class_names)
    correct = (best == targets) & landmark
    order = confidence.argsort(descending=True, stable=True)
    is_landmark, is_correct = landmark[order].double(), correct[order].double()
    named_landmarks = is_landmark.cumsum(0)
    precision_at_k = is_correct.cumsum(0) / named_landmarks.clamp(min=1)
    n_other = int((~landmark).sum())
    false_accept_at_k = (1 - is_landmark).cumsum(0) / max(1, n_other)
    ok = (precision_at_k >= target_precision) & (false_accept_at_k <= max_false_accept)
    # the largest prefix of the ranking that meets both conditions (a prefix ends where a threshold can cut)
    k = int(ok.nonzero().max()) + 1 if ok.any() else 1
    threshold = max(
        MIN_THRESHOLD, math.floor(float(confidence[order][k - 1]) * 1e4) / 1e4
    )  # 4 decimals, never above the cut
    chosen = recognition_metrics(probs, targets, class_names, threshold)
    return {
        "threshold": threshold,
        "score": "probability of the best landmark (the background class's probability counts against it)",
        "target_precision": target_precision,
        "max_false_accept": max_false_accept if n_other else None,
        "valid_precision": chosen.get("precision"),
        "valid_coverage": chosen.get("coverage"),
        "valid_false_accept_rate": chosen.get("false_accept_rate"),
        "valid_gap": chosen["gap"],
        "valid_images": len(targets),
        "valid_no_landmark_images": n_other,
    }


@torch.no_grad()
def validation_logits(
    config: RunConfig, logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets on the run's own validation split, through the eval preprocessing.

    LOGITS (normalised batch -> logits): the run's eager network, or e.g. an int8 ONNX Runtime session's logits.
    """
    outputs, targets = [], []
    loader = run_split_loader(config, "valid", batch_size=batch_size)
    for images, labels in tqdm(loader, desc="validation photos", unit="batch"):
        outputs.append(logits(images).float())
        targets.append(labels)
    return torch.cat(outputs), torch.cat(targets)


def validation_probabilities(
    config: RunConfig, logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and targets on the run's validation split (see validation_logits)."""
    values, targets = validation_logits(config, logits, batch_size)
    return torch.softmax(values, dim=1), targets


def choose_for_run(
    run_dir: str | Path, target_precisions: list[float], max_false_accept: float
) -> tuple[RunConfig, list[dict]]:
    """The run's config and the threshold rule for each target precision, on the run's own validation photos."""
    model, config = load_trained_model(run_dir)
    valid = validation_probabilities(config, model)
    return config, [
        choose_threshold(*valid, config.class_names, target, max_false_accept) for target in target_precisions
    ]


def write_thresholds(
    export_dir: str | Path, config: RunConfig, calibration: dict, max_false_accept: float
) -> dict | None:
    """Put CALIBRATION (chosen on the run's validation photos) into EXPORT_DIR/export.json without re-exporting.

    An export with an int8 model gets its own threshold re-chosen with the same rule, from the int8 file's
    probabilities; that calibration is returned (None without an int8 file).
    """
    bundle.require(export_dir, bundle.EXPORT_FILE)
    info = export_info.read(export_dir)
    info.serving.threshold, info.report.threshold_calibration = calibration["threshold"], calibration
    int8_calibration = None
    if info.serving.onnx_int8:
        int8 = OnnxPredictor.from_export_dir(export_dir, threads.count(), info.serving.onnx_int8["file"])
        int8_probs, targets = validation_probabilities(config, int8.logits)
        int8_calibration = choose_threshold(
            int8_probs, targets, config.class_names, calibration["target_precision"], max_false_accept
        )
        info.serving.onnx_int8.update(threshold=int8_calibration["threshold"], threshold_calibration=int8_calibration)
    export_info.write(export_dir, info)
    return int8_calibration


def run(args: argparse.Namespace) -> None:
    """`landmark threshold RUN [--export-dir DIR] [--target-precision P ...]`: print each rule, write one if asked."""
    if args.export_dir and len(args.target_precision) > 1:
        raise LandmarkError("--export-dir takes one --target-precision; compare several without --export-dir first.")
    config, calibrations = choose_for_run(args.run_dir, args.target_precision, args.max_false_accept)
    for calibration in calibrations:
        print(f"threshold {calibration['threshold']:.4f}: {json.dumps(calibration)}")
    if args.export_dir:
        int8 = write_thresholds(args.export_dir, config, calibrations[0], args.max_false_accept)
        if int8:
            print(f"int8 threshold {int8['threshold']:.4f}: {json.dumps(int8)}")
