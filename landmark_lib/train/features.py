"""The frozen-feature cache: train only the trainable part of a partially fine-tuned backbone, on stored outputs
of its frozen layers, computed once per photo set and shared by runs.

On CPUs the frozen part of a partially fine-tuned backbone costs ~1 minute per 1000 photos, the trainable part a
few seconds. The store holds, for every cached row, VIEWS outputs under the training augmentation and one under the
eval transform, so any run over the same photos, frozen weights, preprocessing and augmentation (another recipe,
a run that holds some collections out, a resumed run) only trains. Each view is written to a temporary file and
renamed when complete, so a killed build keeps its finished views and two builds never read a half-written one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .. import atomic
from ..artifacts.run_folder import FEATURE_CACHE_FILE
from ..data.cache import CachedImageDataset, CachedSplit, reserve
from ..network_layout import timm_layout
from .finetune import StrategyError


class _Part(nn.Module):
    """One side of the split at block FIRST_BLOCK (LINEAR: at the classifier); shares parameters with MODEL."""

    def __init__(self, model: nn.Module, first_block: int, linear: bool):
        super().__init__()
        self.model, self.first_block, self.linear = model, first_block, linear


class FrozenPart(_Part):
    """The layers before the first trainable one (run once per augmented view when features are cached)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = timm_layout(self.model)
        if self.linear:
            return m.forward_head(m.forward_features(x), pre_logits=True)
        x = m.bn1(m.conv_stem(x))
        for block in m.blocks[: self.first_block]:
            x = block(x)
        return x


class TrainablePart(_Part):
    """The layers from the first trainable one to the logits; shares its parameters with the full model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = timm_layout(self.model)
        if self.linear:
            return m.get_classifier()(x)
        return m.get_classifier()(self.pre_logits(x))

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input (the pooled features or the retrieval embedding) of the frozen part's output X."""
        m = timm_layout(self.model)
        if self.linear:
            return x
        for block in m.blocks[self.first_block :]:
            x = block(x)
        return m.forward_head(m.bn2(m.conv_head(x)), pre_logits=True)


def split_for_feature_cache(model: nn.Module, strategy: str, first_group: int) -> tuple[FrozenPart, TrainablePart]:
    """Split a frozen-prefix model into (frozen, trainable) parts whose composition equals model(x).

    Linear probes work for any timm model; partial fine-tuning needs the EfficientNet/MobileNet layout
    (conv_stem, bn1, blocks, conv_head, bn2), where coarse group g >= 1 is block stage g - 1.
    """
    linear = strategy == "linear"
    if not linear:
        if strategy != "partial" or not all(
            hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")
        ):
            raise StrategyError(
                "Feature caching needs --strategy linear, or --strategy partial on an EfficientNet/MobileNet-style backbone; use --feature-cache off."
            )
        first_block = first_group - 1
    else:
        first_block = len(timm_layout(model).blocks) if hasattr(model, "blocks") else 0
    return FrozenPart(model, first_block, linear), TrainablePart(model, first_block, linear)


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


def _compute(
    frozen: nn.Module,
    dataset: CachedImageDataset,
    batch_size: int,
    workers: int,
    seed: int,
    path: Path,
    desc: str,
    dtype: np.dtype,
) -> None:
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
                    out = np.lib.format.open_memmap(
                        tmp, mode="w+", dtype=dtype, shape=(len(dataset), *features.shape[1:])
                    )
                    reserve(tmp, path.parent.parent, desc)  # a full disk: NoSpaceError now, not SIGBUS mid-way
                out[start : start + len(features)] = features
                start += len(features)
        if out is not None:
            out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_feature_store(
    frozen: nn.Module,
    cached: CachedSplit,
    train_transform,
    eval_transform,
    views: int,
    recipe: dict,
    cache_dir: str | Path,
    batch_size: int = 64,
    workers: int = 2,
    dtype: str = "float16",
) -> FeatureStore:
    """Return the store for these frozen layers, photos and transforms, computing whatever views are missing.

    RECIPE: everything besides the weights that changes the outputs (preprocessing, augmentation, seed).
    """
    frozen.eval()
    key = hashlib.sha1(
        json.dumps(
            {"frozen": frozen_fingerprint(frozen), "photos": cached.folder.name, "dtype": dtype, **recipe},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    folder = Path(cache_dir) / f"features-{cached.folder.name}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "recipe.json", json.dumps(recipe, indent=2, default=str))
    rows = np.arange(len(cached.files))
    np_dtype = np.dtype(dtype)
    eval_path = folder / "eval.npy"
    if not eval_path.is_file():
        _compute(
            frozen,
            CachedImageDataset(cached, rows, eval_transform),
            batch_size,
            workers,
            0,
            eval_path,
            "frozen features (eval view)",
            np_dtype,
        )
    train_paths = [folder / f"train_view{v}.npy" for v in range(views)]
    for v, path in enumerate(train_paths):
        if not path.is_file():
            seed = int(recipe.get("seed", 0)) * 1000 + v
            _compute(
                frozen,
                CachedImageDataset(cached, rows, train_transform),
                batch_size,
                workers,
                seed,
                path,
                f"frozen features (train view {v + 1}/{views})",
                np_dtype,
            )
    return FeatureStore(
        folder=folder, train=[np.load(p, mmap_mode="r") for p in train_paths], eval=np.load(eval_path, mmap_mode="r")
    )


def wanted(args: argparse.Namespace, accelerator: Accelerator) -> bool:
    """Whether this run trains on cached features: a frozen prefix exists, and --feature-cache on (auto: one CPU process)."""
    return (
        args.model != "scratch"
        and args.strategy != "full"
        and (
            args.feature_cache == "on"
            or (args.feature_cache == "auto" and accelerator.device.type == "cpu" and accelerator.num_processes == 1)
        )
    )


class ViewDataset(Dataset):
    """Cached features of one augmented view per epoch (fit() changes the view between epochs)."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor):
        self.features, self.targets, self.view = features, targets, 0

    def __len__(self) -> int:
        return self.features.shape[1]

    def __getitem__(self, index: int):
        return self.features[self.view, index].float(), self.targets[index]


def feature_datasets(
    frozen: FrozenPart,
    cached: CachedSplit,
    rows: tuple[np.ndarray, np.ndarray],
    transforms: tuple[Callable, Callable],
    recipe: dict,
    args: argparse.Namespace,
    accelerator: Accelerator,
    run_dir: Path,
) -> tuple[ViewDataset, TensorDataset]:
    """(train, valid) datasets of the frozen part's outputs for the run's ROWS, building the store first if needed.

    TRANSFORMS: (training augmentation, eval transform); RECIPE: see build_feature_store. The one-time cost is
    recorded in the run folder, because it is part of the run's training time (research/compare.py).
    """
    train_rows, valid_rows = rows
    start = time.time()
    with accelerator.main_process_first():
        store = build_feature_store(
            frozen,
            cached,
            *transforms,
            args.feature_views,
            recipe,
            args.cache_dir,
            args.batch_size,
            args.num_workers,
            args.feature_dtype,
        )
    train_features, valid_features = store.train_views(train_rows), store.eval_view(valid_rows)
    if accelerator.is_main_process:
        timing = {
            "seconds": round(time.time() - start, 1),
            "views": args.feature_views,
            "train_photos": len(train_rows),
            "valid_photos": len(valid_rows),
            "store": str(store.folder),
        }
        atomic.write_text(run_dir / FEATURE_CACHE_FILE, json.dumps(timing, indent=2))
    return (
        ViewDataset(train_features, torch.as_tensor(cached.targets[train_rows])),
        TensorDataset(valid_features.float(), torch.as_tensor(cached.targets[valid_rows])),
    )
