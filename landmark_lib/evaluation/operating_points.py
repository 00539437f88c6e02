"""The two operating points of a served model, on the recognition score (index/score.py):

    confident   the precision a photo library may write without asking (>= 99% on the calibration photos)
    suggested   worth showing as "maybe X" or queueing for review (>= 90%)

Below both the answer is "no known landmark". Precision counts every photo we would name: a no-landmark photo named
as a landmark and a landmark named as the wrong one are both mistakes. `max_category_false_accept` also bounds the
false-accept rate of every kind of no-landmark photo separately (a threshold that is fine on average can still name
a third of the look-alike buildings).
"""

from __future__ import annotations

import math

import numpy as np

TARGETS = {"confident": 0.99, "suggested": 0.90}
MAX_CATEGORY_FALSE_ACCEPT = {"confident": 0.05, "suggested": None}


def lowest_threshold(
    score: np.ndarray,
    correct: np.ndarray,
    is_landmark: np.ndarray,
    categories: np.ndarray,
    target_precision: float,
    max_category_false_accept: float | None,
) -> float:
    """The lowest score threshold at which the named photos are right at least TARGET_PRECISION of the time and, if
    given, no category of no-landmark photos is named more than MAX_CATEGORY_FALSE_ACCEPT of the time."""
    order = np.argsort(-score, kind="stable")
    named_ok = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = named_ok >= target_precision
    if max_category_false_accept is not None:
        negatives = ~is_landmark[order]
        for category in np.unique(categories[~is_landmark]):
            in_category = negatives & (categories[order] == category)
            rate = np.cumsum(in_category) / max(1, in_category.sum())
            ok &= rate <= max_category_false_accept
    if not ok.any():
        return round(float(score.max(initial=0.0)) + 1e-4, 4)  # nothing can be named at this precision
    k = int(np.flatnonzero(ok).max())
    return math.floor(float(score[order][k]) * 1e4) / 1e4  # 4 decimals, never above the cut


def summary(
    score: np.ndarray, correct: np.ndarray, is_landmark: np.ndarray, categories: np.ndarray, threshold: float
) -> dict:
    """Coverage and precision on landmark photos, false accepts on no-landmark photos (overall and per category)."""
    named = score >= threshold
    out = {
        "threshold": threshold,
        "landmark_photos": int(is_landmark.sum()),
        "no_landmark_photos": int((~is_landmark).sum()),
        "coverage": float(named[is_landmark].mean()) if is_landmark.any() else None,
        "precision": float(correct[named].mean()) if named.any() else None,
        "false_accept_rate": float(named[~is_landmark].mean()) if (~is_landmark).any() else None,
        "false_accepts_by_category": {
            str(c): float(named[~is_landmark & (categories == c)].mean()) for c in np.unique(categories[~is_landmark])
        },
    }
    return out


def choose_operating_points(
    score: np.ndarray, correct: np.ndarray, is_landmark: np.ndarray, categories: np.ndarray, calibrated_on: str
) -> dict:
    """{'confident': threshold, 'suggested': threshold, 'calibration': ...}: what export.json's operating points hold.
    The suggested point is never above the confident one."""
    points = {
        level: lowest_threshold(score, correct, is_landmark, categories, target, MAX_CATEGORY_FALSE_ACCEPT[level])
        for level, target in TARGETS.items()
    }
    points["suggested"] = min(points["suggested"], points["confident"])
    return {
        **points,
        "calibration": {
            "on": calibrated_on,
            "targets": TARGETS,
            "max_category_false_accept": MAX_CATEGORY_FALSE_ACCEPT,
            **{level: summary(score, correct, is_landmark, categories, points[level]) for level in TARGETS},
        },
    }
