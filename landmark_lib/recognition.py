"""Which answer a photo gets: its most probable landmark, never the background class.

A model may have a background class (`no_landmark`, trained on everyday photos). It is never an answer: a photo's
answer is its most probable *landmark*, with that landmark's probability as the confidence (probability mass the
model gives the background class lowers it). The photo is "recognised" when the confidence reaches the rule's
threshold, chosen on validation photos that include no-landmark photos (landmark_lib.evaluation.threshold).
Serving, evaluation and threshold choice all call these functions, so they agree on every photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .labels import BACKGROUND_CLASS

DEFAULT_THRESHOLD = 0.35  # the recognition threshold of an export that records none

if TYPE_CHECKING:
    import torch


def check_threshold(value: float) -> float:
    """VALUE if it is a probability in [0, 1]; a threshold outside that would name every or no landmark."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"the recognition threshold must be a probability between 0 and 1, got {value}")
    return float(value)


def landmark_indices(class_names: list[str]) -> list[int]:
    """Indices of the classes that are landmarks (every class but the background class)."""
    return [i for i, name in enumerate(class_names) if name != BACKGROUND_CLASS]


def landmark_columns(class_names: list[str]) -> torch.Tensor:
    """landmark_indices as a tensor."""
    import torch

    return torch.tensor(landmark_indices(class_names), dtype=torch.long)


def best_landmarks(probs: torch.Tensor, class_names: list[str], k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [N, k], class indices [N, k]) of the K most probable landmarks of each photo."""
    columns = landmark_columns(class_names)
    values, positions = probs[:, columns].topk(min(k, len(columns)), dim=1)
    return values, columns[positions]


def top_landmarks(probs: np.ndarray, class_names: list[str], k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """best_landmarks in numpy (what a server without torch calls): (probabilities [N, k], class indices [N, k]),
    most probable first (equal probabilities: the lower class index first)."""
    columns = np.asarray(landmark_indices(class_names))
    order = np.argsort(-probs[:, columns], axis=1, kind="stable")[:, : min(k, len(columns))]
    return np.take_along_axis(probs[:, columns], order, axis=1), columns[order]


def is_landmark_target(targets: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    """True for photos whose true class is a landmark (not the background class)."""
    import torch

    if BACKGROUND_CLASS not in class_names:
        return torch.ones_like(targets, dtype=torch.bool)
    return targets != class_names.index(BACKGROUND_CLASS)


LEVELS = ("confident", "suggested")  # what a recognised answer can be; below both: "no known landmark"


@dataclass(frozen=True)
class OperatingPoints:
    """The thresholds a served answer is judged by, on the recognition score SCORE (index/score.py): CONFIDENT (a
    library may write it without asking) and SUGGESTED ("maybe X", for review; None: the export has no such point)."""

    score: str
    confident: float
    suggested: float | None = None

    @classmethod
    def from_export(cls, recorded: dict | None, threshold: float) -> OperatingPoints:
        """export.json's operating points, or (an export without a photo index) the probability THRESHOLD alone."""
        if not recorded:
            return cls("probability", threshold)
        confident, suggested = recorded.get("confident"), recorded.get("suggested")
        for value in (confident, suggested):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"an operating point must be a finite number, got {value!r}")
        if confident is None:
            raise ValueError("the operating points record no 'confident' threshold")
        return cls(
            str(recorded.get("score", "probability")),
            float(confident),
            None if suggested is None else min(float(suggested), float(confident)),
        )

    def level(self, score: float) -> str | None:
        """'confident', 'suggested' or None (no known landmark) for a photo with this SCORE."""
        if score >= self.confident:
            return "confident"
        if self.suggested is not None and score >= self.suggested:
            return "suggested"
        return None
