"""The frozen layers' outputs for every photo of a cached training set, computed once and shared by runs.

On CPUs the frozen part of a partially fine-tuned backbone costs ~1 minute per 1000 photos, the trainable part a
few seconds. The store holds, for every cached row, VIEWS outputs under the training augmentation and one under the
eval transform, so any run over the same photos, frozen weights, preprocessing and augmentation (another recipe,
a run that holds some collections out, a resumed run) only trains. Each view is written to a temporary file and
renamed when complete, so a killed build keeps its finished views and two builds never read a half-written one.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import atomic
from .data.cache import CachedImageDataset, CachedSplit, reserve


def frozen_fingerprint(frozen: nn.Module) -> str:
    """A hash of where the frozen part ends and of its frozen weights: the store is valid only for exactly these."""
    digest = hashlib.sha1(repr((getattr(frozen, "first_block", None), getattr(frozen, "linear", None))).encode())
    for name, param in frozen.named_parameters():
        if not param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class FeatureStore:
    """train[v][row] is view v of a cached row under the training augmentation, eval[row] its eval-transform output
    (memory-mapped: a run reads only its own rows)."""

    folder: Path
    train: list[np.ndarray]
    eval: np.ndarray

    def train_views(self, rows: np.ndarray) -> torch.Tensor:
        """[views, len(rows), ...] for the run's training rows."""
        return torch.from_numpy(np.stack([view[rows] for view in self.train]))

    def eval_view(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.eval[rows]))


def _compute(frozen: nn.Module, dataset: CachedImageDataset, batch_size: int, workers: int, seed: int, path: Path, desc: str, dtype: np.dtype) -> None:
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, generator=generator)
    out = None
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    start = 0
    try:
        with torch.no_grad():
            for images, _ in tqdm(loader, desc=desc, unit="batch"):
                features = frozen(images).numpy().astype(dtype)
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(dataset), *features.shape[1:]))
                    reserve(tmp, path.parent.parent, desc)  # a full disk: NoSpaceError now, not SIGBUS mid-way
                out[start : start + len(features)] = features
                start += len(features)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_feature_store(
    frozen: nn.Module, cached: CachedSplit, train_transform, eval_transform, views: int, recipe: dict,
    cache_dir: str | Path, batch_size: int = 64, workers: int = 2, dtype: str = "float16",
) -> FeatureStore:
    """Return the store for these frozen layers, photos and transforms, computing whatever views are missing.

    RECIPE: everything besides the weights that changes the outputs (preprocessing, augmentation, seed).
    """
    frozen.eval()
    key = hashlib.sha1(json.dumps({"frozen": frozen_fingerprint(frozen), "photos": cached.folder.name, "dtype": dtype, **recipe}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"features-{cached.folder.name}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "recipe.json", json.dumps(recipe, indent=2, default=str))
    rows = np.arange(len(cached.files))
    np_dtype = np.dtype(dtype)
    eval_path = folder / "eval.npy"
    if not eval_path.is_file():
        _compute(frozen, CachedImageDataset(cached, rows, eval_transform), batch_size, workers, 0, eval_path, "frozen features (eval view)", np_dtype)
    train_paths = [folder / f"train_view{v}.npy" for v in range(views)]
    for v, path in enumerate(train_paths):
        if not path.is_file():
            seed = int(recipe.get("seed", 0)) * 1000 + v
            _compute(frozen, CachedImageDataset(cached, rows, train_transform), batch_size, workers, seed, path, f"frozen features (train view {v + 1}/{views})", np_dtype)
    return FeatureStore(folder=folder, train=[np.load(p, mmap_mode="r") for p in train_paths], eval=np.load(eval_path, mmap_mode="r"))
