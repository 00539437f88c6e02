"""Time one epoch of train-image loading from the resized cache against decoding the original files.

Answers "is the cache worth it on a CPU box?": both sides use the same DataLoader settings and the same
transform (the training augmentation, then a plain eval-style one), so the difference is decode + resize.

    PYTHONPATH=. .venv/bin/python benchmarks/data_loading.py --data ../shared/data/world_landmarks --limit 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from landmark_lib.data.cache import DEFAULT_CACHE_DIR, CachedImageDataset, build_cache, cache_key
from landmark_lib.data.folder import DatasetError, open_split
from landmark_lib.data.images import load_rgb
from landmark_lib.data.transforms import AugmentConfig, EvalTransform, train_transform
from landmark_lib.preprocess import PreprocessConfig


class FileDataset(Dataset):
    """What training does without the cache: decode the original file, then transform it."""

    def __init__(self, files: list[str], targets: list[int], transform):
        self.files, self.targets, self.transform = files, targets, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_rgb(self.files[index])), self.targets[index]


def time_epoch(dataset: Dataset, batch_size: int, workers: int) -> float:
    """Seconds to iterate one shuffled epoch (worker start-up included, as in a real epoch)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/world_landmarks"))
    parser.add_argument("--limit", type=int, default=None, help="time a random subset of N train images")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument(
        "--cache-size", type=int, default=None, help="cache side (default: the resize size training uses)"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="epochs per variant; the fastest is shown (less noise)")
    args = parser.parse_args(argv)

    try:
        split = open_split(args.data, "train")
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.limit and args.limit < len(split.samples):
        split = dataclasses.replace(split, samples=sorted(random.Random(0).sample(split.samples, args.limit)))
    torch.manual_seed(0)
    random.seed(0)

    pre = PreprocessConfig(input_size=args.input_size)
    args.cache_size = args.cache_size or pre.resize_size
    started = time.perf_counter()
    key = cache_key(split, args.cache_size)
    existed = (args.cache_dir / f"{split.root.name}-train-{args.cache_size}px-{key}" / "meta.json").is_file()
    cached = build_cache(split, args.cache_size, args.cache_dir, workers=args.workers)
    build_s = time.perf_counter() - started
    files = [cached.files[i] for i in cached.readable]
    targets = [int(cached.targets[i]) for i in cached.readable]

    transforms = {
        "train (timm aug + degrade)": train_transform(pre, AugmentConfig()),
        "eval (resize+crop)": EvalTransform(pre),
    }
    print(
        f"data: {split.root}  train images: {len(files)}  batch {args.batch_size}  workers {args.workers}  "
        f"input {args.input_size}px  cache {args.cache_size}px"
    )
    print(
        f"cache: {cached.folder} ({'reused' if existed else 'built'} in {build_s:.1f} s"
        f"{'' if existed else '; building it also warmed the OS file cache for the file runs'})"
    )
    print(f"{'transform':28s} {'cache s':>9s} {'files s':>9s} {'files/cache':>12s}")
    for name, transform in transforms.items():
        cache_s = min(
            time_epoch(CachedImageDataset(cached, cached.readable, transform), args.batch_size, args.workers)
            for _ in range(args.repeats)
        )
        files_s = min(
            time_epoch(FileDataset(files, targets, transform), args.batch_size, args.workers)
            for _ in range(args.repeats)
        )
        print(f"{name:28s} {cache_s:9.1f} {files_s:9.1f} {files_s / cache_s:11.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
