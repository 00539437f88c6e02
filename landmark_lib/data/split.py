"""Deterministic stratified train/valid split of train/ (test/ is never used for model selection)."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np


def stratified_split(targets: list[int], valid_fraction: float = 0.15, seed: int = 0) -> tuple[list[int], list[int]]:
    """Return (train_indices, valid_indices): each class keeps `valid_fraction` of its images for validation.

    Every class with at least two images gets at least one validation image; the result depends only
    on the targets, the fraction and the seed.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}.")
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_class[target].append(index)
    rng = random.Random(seed)
    train, valid = [], []
    for target in sorted(by_class):
        indices = by_class[target][:]
        rng.shuffle(indices)
        n_valid = round(valid_fraction * len(indices))
        if valid_fraction > 0 and len(indices) >= 2:
            n_valid = min(max(n_valid, 1), len(indices) - 1)
        valid.extend(indices[:n_valid])
        train.extend(indices[n_valid:])
    return sorted(train), sorted(valid)


def split_rows(
    valid_rows: np.ndarray, targets: np.ndarray, valid_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_rows, valid_rows) over the readable rows of a cached split; training and calibration
    both call this, so they always agree on which photos are validation photos.

    GROUPS (e.g. the dataset root of each row) stratify too: each (class, group) keeps its share of validation
    photos. With one group the split is the same as without groups.
    """
    strata = (
        targets[valid_rows] if groups is None else targets[valid_rows] * (int(groups.max()) + 1) + groups[valid_rows]
    )
    train_idx, valid_idx = stratified_split(strata.tolist(), valid_fraction, seed)
    return valid_rows[train_idx], valid_rows[valid_idx]
