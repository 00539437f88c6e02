"""The trained model's probabilities and embedding for every photo of a run's training folders, with what each
photo is (its class, collection, category and part of the run: train, valid or excluded), for the photo index an
export ships (export/index.py) and for calibration on collections the model never saw (evaluation/calibrate.py).

A run trained on cached frozen features (train/features.py) has the frozen layers' output of every photo on disk:
only the trainable part runs, seconds instead of the minutes the whole network takes on CPUs. A check on a few
photos through the whole network guards against a store that does not belong to these weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..artifacts.run_folder import FEATURE_CACHE_FILE, RunConfig
from ..data.cache import CachedImageDataset, CachedSplit
from ..data.folder import ImageFolderSplit
from ..data.provenance import sample_categories, sample_sources
from ..data.run_split import run_cached_split, run_data_on_disk, run_split
from ..embedding import l2_normalise, logits_and_embedding
from ..errors import LandmarkError
from .features import split_for_feature_cache
from .finetune import trainable_groups

STORE_CHECK_PHOTOS = 8
STORE_TOLERANCE = 2e-2  # float16 features: logits within a few hundredths


@dataclass(frozen=True)
class RunEmbeddings:
    """Row i of each array is photo i of the run's cached train/ folders (rows that could not be read are left out)."""

    probabilities: np.ndarray  # [N, C] softmax
    embeddings: np.ndarray  # [N, D] unit rows
    targets: np.ndarray  # [N] class index (into the run's classes)
    collections: np.ndarray  # [N] provenance source_set
    categories: np.ndarray  # [N] provenance category ('' where none)
    parts: np.ndarray  # [N] 'train', 'valid' or 'excluded' (--exclude'd from this run)
    files: np.ndarray  # [N] the photo's path


def _cached(config: RunConfig) -> tuple[CachedSplit, ImageFolderSplit]:
    if not run_data_on_disk(config):
        raise LandmarkError(
            f"The run's dataset ({config.train.data}) is not on disk; its train/ photos are needed here."
        )
    return run_cached_split(config)


@torch.no_grad()
def _through_network(model: nn.Module, cached: CachedSplit, rows: np.ndarray, config: RunConfig, batch_size: int):
    from ..data.transforms import EvalTransform

    loader = DataLoader(CachedImageDataset(cached, rows, EvalTransform(config.preprocess)), batch_size=batch_size)
    logits, features = [], []
    for images, _ in tqdm(loader, desc="embedding the run's photos", unit="batch"):
        batch_logits, embedding = logits_and_embedding(model, images)
        logits.append(batch_logits)
        features.append(embedding)
    return torch.cat(logits), torch.cat(features)


@torch.no_grad()
def _through_store(model: nn.Module, config: RunConfig, store: Path, rows: np.ndarray, batch_size: int):
    train = config.train
    first = trainable_groups(model, train.strategy, train.train_stages)
    _, trainable = split_for_feature_cache(model, train.strategy, first)
    frozen_outputs = np.load(store / "eval.npy", mmap_mode="r")
    logits, features = [], []
    for start in tqdm(range(0, len(rows), batch_size), desc="embedding the run's photos (cached features)"):
        x = torch.from_numpy(np.ascontiguousarray(frozen_outputs[rows[start : start + batch_size]])).float()
        batch_logits, embedding = trainable.logits_and_embedding(x)
        logits.append(batch_logits)
        features.append(embedding)
    return torch.cat(logits), torch.cat(features)


def _store_of(run_dir: Path, cached: CachedSplit) -> Path | None:
    """The run's feature store, when it recorded one that still covers every cached photo."""
    record = run_dir / FEATURE_CACHE_FILE
    if not record.is_file():
        return None
    store = Path(json.loads(record.read_text(encoding="utf-8")).get("store", ""))
    eval_view = store / "eval.npy"
    if not eval_view.is_file() or np.load(eval_view, mmap_mode="r").shape[0] != len(cached.files):
        return None
    return store


def run_embeddings(model: nn.Module, config: RunConfig, run_dir: str | Path, batch_size: int = 64) -> RunEmbeddings:
    """Probabilities and embeddings of every readable photo of the run's train/ folders (MODEL: its trained weights)."""
    model.eval()
    cached, split = _cached(config)
    rows = np.asarray(cached.readable)
    train_rows, valid_rows = run_split(split, cached, config.train)
    store = _store_of(Path(run_dir), cached)
    if store is not None:
        logits, features = _through_store(model, config, store, rows, batch_size)
        check = rows[np.linspace(0, len(rows) - 1, min(STORE_CHECK_PHOTOS, len(rows))).astype(int)]
        live, _ = _through_network(model, cached, check, config, batch_size)
        drift = (live - logits[np.searchsorted(rows, check)]).abs().max().item()
        if drift > STORE_TOLERANCE:
            logits, features = _through_network(model, cached, rows, config, batch_size)
    else:
        logits, features = _through_network(model, cached, rows, config, batch_size)
    parts = np.full(len(cached.files), "excluded", dtype=object)
    parts[train_rows], parts[valid_rows] = "train", "valid"
    return RunEmbeddings(
        probabilities=torch.softmax(logits.float(), dim=1).numpy(),
        embeddings=l2_normalise(features.float()).numpy(),
        targets=np.asarray(cached.targets)[rows],
        collections=np.asarray(sample_sources(split), dtype=str)[rows],
        categories=np.asarray(sample_categories(split), dtype=str)[rows],
        parts=parts[rows].astype(str),
        files=np.asarray(cached.files, dtype=str)[rows],
    )
