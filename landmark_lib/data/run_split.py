"""A run's own training and validation photos, through the eval preprocessing, for work done after training.

The recognition threshold is chosen on the validation rows and int8 quantisation is calibrated on training rows;
both go through split_rows with the run's seed, so neither ever sees a test photo or mixes the two parts up.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from torch.utils.data import DataLoader

from ..artifacts.run_folder import RunConfig
from ..artifacts.train_config import TrainConfig
from .cache import CachedImageDataset, CachedSplit, build_cache
from .folder import DatasetError, ImageFolderSplit, data_roots, open_split
from .holdout import without_holdout
from .provenance import excluded_mask
from .split import split_rows

PARTS = ("train", "valid")


def run_split(train_split: ImageFolderSplit, cached: CachedSplit, train: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, valid_rows) of a run: readable rows minus --exclude'd photos, stratified by class and root.

    Training, int8 calibration and threshold choice all call this, so they agree on every photo's part.
    """
    rows = cached.readable
    if train.exclude:
        excluded = np.asarray(excluded_mask(train_split, train.exclude))
        rows = rows[~excluded[rows]]
        missing = sorted(set(range(len(train_split.class_names))) - set(cached.targets[rows].tolist()))
        if missing:
            names = ", ".join(train_split.class_names[i] for i in missing[:5])
            raise DatasetError(
                f"--exclude leaves no training photo of {names}; hold out only collections whose classes have photos elsewhere."
            )
    groups = np.asarray(train_split.sample_roots) if len(train_split.roots) > 1 else None
    return split_rows(rows, cached.targets, train.valid_fraction, train.seed, groups)


def run_data_on_disk(config: RunConfig) -> bool:
    """True when the run's dataset is on disk (its train/ folders), so thresholds and calibration can be computed."""
    roots = data_roots(config.train.data)
    return bool(roots) and all((r / "train").is_dir() for r in roots) and "cache_dir" in config.args


def run_cached_split(config: RunConfig) -> tuple[CachedSplit, ImageFolderSplit]:
    """The cached photos of the run's train/ folders and the split they come from, its held-out classes' rows
    marked unusable (what run_split divides into the run's parts)."""
    train = config.train
    holdout = train.holdout_classes
    train_split = open_split(train.data or [], "train", class_names=None if holdout else config.class_names)
    cached = build_cache(train_split, config.preprocess.resize_size, train.cache_dir)
    if holdout:
        cached = without_holdout(cached, train_split.class_names, holdout)
        train_split = replace(train_split, class_names=config.class_names)
    return cached, train_split


def run_split_loader(config: RunConfig, part: str, limit: int | None = None, batch_size: int = 64) -> DataLoader:
    """(normalised image batch, targets) over PART ('train' or 'valid') of the run's split; LIMIT spreads over classes."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    if not run_data_on_disk(config):
        raise DatasetError(
            f"The run's dataset ({config.train.data}) is not on disk; its train/ photos are needed here."
        )
    from .transforms import EvalTransform  # timm: only when photos are loaded, not for run_split

    cached, train_split = run_cached_split(config)
    rows = dict(zip(PARTS, run_split(train_split, cached, config.train)))[part]
    if limit is not None and limit < len(rows):
        rows = rows[np.argsort(cached.targets[rows], kind="stable")]  # sorted by class, then evenly spaced picks
        rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]
    return DataLoader(
        CachedImageDataset(cached, rows, EvalTransform(config.preprocess)), batch_size=batch_size, num_workers=2
    )
