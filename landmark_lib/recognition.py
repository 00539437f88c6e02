"""When a photo counts as showing a known landmark, and how well a model decides it (GAP, false accepts, coverage).

A model may have a background class (`no_landmark`, trained on everyday photos). It is never an answer: a photo's
answer is its most probable *landmark*, with that landmark's probability as the confidence (probability mass the
model gives the background class lowers it). The photo is "recognised" when the confidence reaches the rule's
threshold, chosen on validation photos that include no-landmark photos. Serving, evaluation and threshold choice
all call these functions, so they agree on every photo.
"""
from __future__ import annotations

import math

import torch

from .data.folder import BACKGROUND_CLASS

MIN_THRESHOLD = 0.2  # below this a softmax over ~50 classes says little even when validation is clean


def landmark_columns(class_names: list[str]) -> torch.Tensor:
    """Indices of the classes that are landmarks (every class but the background class)."""
    return torch.tensor([i for i, name in enumerate(class_names) if name != BACKGROUND_CLASS], dtype=torch.long)


def best_landmarks(probs: torch.Tensor, class_names: list[str], k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [N, k], class indices [N, k]) of the K most probable landmarks of each photo."""
    columns = landmark_columns(class_names)
    values, positions = probs[:, columns].topk(min(k, len(columns)), dim=1)
    return values, columns[positions]


def is_landmark_target(targets: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    """True for photos whose true class is a landmark (not the background class)."""
    if BACKGROUND_CLASS not in class_names:
        return torch.ones_like(targets, dtype=torch.bool)
    return targets != class_names.index(BACKGROUND_CLASS)


def gap(confidence: torch.Tensor, correct: torch.Tensor, n_landmark_photos: int) -> float | None:
    """Global Average Precision (Google Landmark Recognition): predictions ranked by confidence,
    GAP = (1/M) * sum_i P(i) * rel(i), M = photos that show a known landmark; a no-landmark photo is never right."""
    if n_landmark_photos == 0:
        return None
    order = confidence.argsort(descending=True, stable=True)
    rel = correct[order].double()
    precision_at_i = rel.cumsum(0) / torch.arange(1, len(rel) + 1, dtype=torch.float64)
    return float((precision_at_i * rel).sum() / n_landmark_photos)


def recognition_metrics(probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], threshold: float | None) -> dict:
    """GAP over all photos; on landmark photos top-1 of the best landmark, coverage (share named) and precision at
    THRESHOLD; on no-landmark photos the false-accept rate (share named as a landmark) at THRESHOLD."""
    confidence, best = (t[:, 0] for t in best_landmarks(probs, class_names))
    landmark = is_landmark_target(targets, class_names)
    correct = (best == targets) & landmark
    n_landmark, n_other = int(landmark.sum()), int((~landmark).sum())
    out = {
        "gap": gap(confidence, correct, n_landmark),
        "landmark_photos": n_landmark,
        "no_landmark_photos": n_other,
        "landmark_top1": float(correct[landmark].double().mean()) if n_landmark else None,
        "threshold": threshold,
    }
    if threshold is not None:
        named = confidence >= threshold
        out.update(
            coverage=float(named[landmark].double().mean()) if n_landmark else None,
            precision=float(correct[named].double().sum() / int((named & landmark).sum())) if (named & landmark).any() else None,
            false_accept_rate=float(named[~landmark].double().mean()) if n_other else None,
            false_accepts=int(named[~landmark].sum()),
        )
    return out


def choose_threshold(
    probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], target_precision: float = 0.95,
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
    threshold = max(MIN_THRESHOLD, math.floor(float(confidence[order][k - 1]) * 1e4) / 1e4)  # 4 decimals, never above the cut
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
