"""The frozen-feature cache: train only the trainable part of a partially fine-tuned backbone, on stored outputs
of its frozen layers, computed once per photo set and shared by runs.

On CPUs the frozen part of a partially fine-tuned backbone costs ~1 minute per 1000 photos, the trainable part a
few seconds. The store holds, for every cached row, VIEWS outputs under the training augmentation and one under the
eval transform, so any run over the same photos, frozen weights, preprocessing and augmentation (another recipe,
a run that holds some collections out, a resumed run) only trains. A view in progress is written in chunks of
rows, each renamed into place when complete, then assembled into one file renamed into place: a killed build keeps
its finished views and chunks (the next one computes only the rest), and no build reads a half-written file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
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
from ..embedding import head_and_embedding
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
        """The classifier's input (the pooled features or the retrieval neck's projection) of the frozen part's
        output X."""
        if self.linear:
            return x
        return timm_layout(self.model).forward_head(self._feature_map(x), pre_logits=True)

    def logits_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding: embedding.py) of the frozen part's output X, as the whole network gives them."""
        if self.linear:
            return timm_layout(self.model).get_classifier()(x), x
        return head_and_embedding(self.model, self._feature_map(x))

    def _feature_map(self, x: torch.Tensor) -> torch.Tensor:
        m = timm_layout(self.model)
        for block in m.blocks[self.first_block :]:
            x = block(x)
        return m.bn2(m.conv_head(x))


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


CHUNK_ROWS = 1024  # rows per chunk file of a view being computed: a killed pass loses at most one (~1 min on 2 CPUs)


@dataclass
class _Pass:
    """One pass of the frozen part over every cached row: view PATH under TRANSFORM, its augmentation SEED."""

    path: Path
    transform: object
    seed: int

    @property
    def parts(self) -> Path:
        """Where the finished chunks of a pass in progress wait (renamed into place one by one)."""
        return self.path.with_name(self.path.stem + ".parts")

    def chunk(self, start: int, stop: int) -> Path:
        return self.parts / f"rows-{start:08d}-{stop:08d}.npy"

    def rows_done(self, total: int) -> int:
        if self.path.is_file():
            return total
        return sum(stop - start for start, stop in _chunks(total) if self.chunk(start, stop).is_file())


def _chunks(total: int) -> list[tuple[int, int]]:
    return [(start, min(start + CHUNK_ROWS, total)) for start in range(0, total, CHUNK_ROWS)]


def _compute_pass(
    frozen: nn.Module,
    cached: CachedSplit,
    todo: _Pass,
    batch_size: int,
    workers: int,
    dtype: np.dtype,
    bar: tqdm,
) -> None:
    """Write TODO.path: each chunk of rows to its own file (atomically, skipped when a killed pass already wrote it),
    then all chunks into one .npy renamed into place. Each chunk's augmentation is seeded by its rows, so a resumed
    pass computes what an uninterrupted one would."""
    total = len(cached.files)
    todo.parts.mkdir(exist_ok=True)
    with torch.no_grad():
        for start, stop in _chunks(total):
            if todo.chunk(start, stop).is_file():
                continue
            seed = todo.seed * 1_000_003 + start
            dataset = CachedImageDataset(cached, np.arange(start, stop), todo.transform)
            generator = torch.Generator().manual_seed(seed)  # seeds the workers' augmentation
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, generator=generator)
            parts = []
            with _seeded(seed):  # the augmentation without workers
                for images, _ in loader:
                    parts.append(frozen(images).numpy().astype(dtype))
                    bar.update(len(images))
            with atomic.atomic_path(todo.chunk(start, stop)) as tmp, open(tmp, "wb") as handle:
                np.save(handle, np.concatenate(parts))
    _assemble(todo, total, dtype)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Inside: torch's, Python's and numpy's global generators start from SEED; outside, they are as they were."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _assemble(todo: _Pass, total: int, dtype: np.dtype) -> None:
    """The chunks of TODO as one memory-mappable .npy at TODO.path (renamed when complete), then the chunks go."""
    tmp = todo.path.with_name(f"{todo.path.stem}.{os.getpid()}.tmp.npy")
    try:
        out = None
        for start, stop in _chunks(total):
            chunk = np.load(todo.chunk(start, stop))
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(total, *chunk.shape[1:]))
                reserve(tmp, todo.path.parent.parent, todo.path.name)  # a full disk: NoSpaceError, not SIGBUS
            out[start:stop] = chunk
        if out is not None:
            out.flush()
        del out
        os.replace(tmp, todo.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    shutil.rmtree(todo.parts, ignore_errors=True)


def remove_orphans(folder: Path) -> None:
    """Delete what killed builds left (their process is gone): a killed assembly left a whole view's size each time,
    a killed chunk write a partial chunk; and the chunks of views already assembled. Other chunks are kept: they are
    finished work the next build reuses."""
    for tmp in [*folder.glob("*.tmp.npy"), *folder.glob("*.parts/.*.tmp")]:
        pid = tmp.name.split(".")[-3]  # train_view0.PID.tmp.npy, .rows-....npy.PID.HEX.tmp
        if pid.isdigit() and not atomic.process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
    for parts in folder.glob("*.parts"):
        if parts.with_name(parts.name.removesuffix(".parts") + ".npy").is_file():
            shutil.rmtree(parts, ignore_errors=True)


def _measured_seconds_per_photo(frozen: nn.Module, cached: CachedSplit, transform, batch_size: int) -> float:
    """Seconds per photo of one pass, timed on one batch (decoding and augmentation included, in this process)."""
    rows = np.arange(min(batch_size, len(cached.files)))
    start = time.perf_counter()
    with torch.no_grad(), _seeded(0):  # the global random state stays as training left it
        images = torch.stack([CachedImageDataset(cached, rows, transform)[i][0] for i in range(len(rows))])
        frozen(images)
    return (time.perf_counter() - start) / max(1, len(rows))


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

    RECIPE: everything besides the weights that changes the outputs (preprocessing, augmentation, seed). Before the
    work starts, one line says how much it is (passes, photos, minutes at the rate measured on one batch); one bar
    with an ETA covers every pass.
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
    remove_orphans(folder)
    atomic.write_text(folder / "recipe.json", json.dumps(recipe, indent=2, default=str))
    eval_path = folder / "eval.npy"
    train_paths = [folder / f"train_view{v}.npy" for v in range(views)]
    passes = [_Pass(eval_path, eval_transform, 0)] + [
        _Pass(path, train_transform, int(recipe.get("seed", 0)) * 1000 + v) for v, path in enumerate(train_paths)
    ]
    total = len(cached.files)
    todo = [p for p in passes if not p.path.is_file()]
    if todo:
        done = sum(p.rows_done(total) for p in todo)
        left = len(todo) * total - done
        minutes = left * _measured_seconds_per_photo(frozen, cached, train_transform, batch_size) / 60
        print(
            f"frozen features: {len(todo)} pass{'es' if len(todo) > 1 else ''} over {total:,} photos "
            f"({views} augmented view{'s' if views > 1 else ''} + 1 eval in all{f'; {done:,} rows already done' if done else ''}), "
            f"about {minutes:.0f} min at the measured rate; computed once into {folder} and reused by later runs; "
            "--feature-views trades accuracy for time",
            flush=True,
        )
        with tqdm(total=len(todo) * total, initial=done, desc="frozen features (all passes)", unit="photo") as bar:
            for one in todo:
                _compute_pass(frozen, cached, one, batch_size, workers, np.dtype(dtype), bar)
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
