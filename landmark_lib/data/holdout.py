"""Training without some classes (`--holdout-classes NAME...`): the model never sees them, as if their folders
were not there, yet the resized photo cache and the frozen-feature store stay those of the whole dataset.

The gallery protocol (`landmark gallery evaluate`) needs a model that has never seen the landmarks it later enrolls.
Removing the folders would change the cache keys and cost a fresh frozen-feature pass (~45 min on 2 cores); instead
the held-out rows are dropped from the cached split and the other classes' targets are renumbered.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .cache import CachedSplit
from .folder import DatasetError


def kept_classes(class_names: list[str], holdout: list[str] | None) -> list[str]:
    """CLASS_NAMES without HOLDOUT (in order); a name that is no class, or holding out all but one, is an error."""
    holdout = list(holdout or [])
    unknown = sorted(set(holdout) - set(class_names))
    if unknown:
        raise DatasetError(
            f"--holdout-classes {', '.join(unknown[:5])} is not a class of the dataset; use train/ class folder names."
        )
    kept = [name for name in class_names if name not in set(holdout)]
    if len(kept) < 2:
        raise DatasetError(f"--holdout-classes leaves {len(kept)} class to train; hold out fewer classes.")
    return kept


def without_holdout(cached: CachedSplit, class_names: list[str], holdout: list[str] | None) -> CachedSplit:
    """CACHED with the held-out classes' rows marked unusable (target -1, not in `readable`) and targets renumbered to
    kept_classes(); the rows, files and folder (the feature store's key) are unchanged."""
    if not holdout:
        return cached
    kept = kept_classes(class_names, holdout)
    new_index = {name: i for i, name in enumerate(kept)}
    remap = np.array([new_index.get(name, -1) for name in class_names], dtype=np.int64)
    targets = remap[cached.targets]
    return replace(cached, targets=targets, readable=cached.readable[targets[cached.readable] >= 0])
