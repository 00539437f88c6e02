"""A one-time resized copy of a split (uint8 array on disk) so CPU epochs skip JPEG decoding and big resizes.

Each image is resized so its shorter side is `size` and centre-cropped to size x size, then stored in one
memory-mapped .npy file. The cache folder name carries a hash of the file list (paths, sizes, mtimes) and
the size, so any change to the dataset builds a fresh cache instead of serving stale pixels.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..artifacts.train_config import DEFAULT_CACHE_DIR
from ..atomic import NO_SPACE, NoSpaceError, no_space
from .folder import ImageFolderSplit
from .images import ImageLoadError, load_rgb

# The serving budget (images.MAX_DECODE_BYTES) bounds what a stranger's upload may cost; a dataset's own photos are
# cached once, in worker processes, and keep decoding as they always did (a 200 MP RGBA photo is 1.6 GB).
TRAINING_DECODE_BYTES = 2 * 2**30


def resize_square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side -> size (bicubic, antialiased), then a centre size x size crop."""
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def cache_key(split: ImageFolderSplit, size: int) -> str:
    digest = hashlib.sha1(f"{size}|{'|'.join(str(r.resolve()) for r in split.roots)}".encode())
    for path, target in split.samples:
        stat = path.stat()
        digest.update(f"{path}|{target}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class _Decode(Dataset):
    def __init__(self, samples: list[tuple[Path, int]], size: int):
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, str]:
        path = self.samples[index][0]
        try:
            return np.asarray(resize_square(load_rgb(path, max_bytes=TRAINING_DECODE_BYTES), self.size)), ""
        except ImageLoadError as error:
            return np.zeros((self.size, self.size, 3), np.uint8), str(error)


@dataclass
class CachedSplit:
    """The cached pixels of one split: images[i] is uint8 [size, size, 3], targets[i] its class index.

    `readable` lists the rows whose file decoded; `skipped` says why the others did not.
    """

    folder: Path
    images: np.ndarray
    targets: np.ndarray
    readable: np.ndarray
    files: list[str]
    skipped: list[str]


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Held while FOLDER is checked and built: a second training building the same cache waits, then reuses it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reserve(path: Path, cache_dir: Path, what: str) -> None:
    """Allocate PATH's blocks now: on a full disk, writing a sparse memory map later kills the process (SIGBUS) and
    orphans its workers; here it is a NoSpaceError naming the folder and the size needed."""
    size = path.stat().st_size
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise NoSpaceError(cache_dir, f" ({what} needs {size / 2**20:.0f} MB)") from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # filesystems without fallocate: written as it goes
            raise


def build_cache(
    split: ImageFolderSplit, size: int, cache_dir: str | Path = DEFAULT_CACHE_DIR, workers: int = 2
) -> CachedSplit:
    """Return the cache for this split and size, building it once (unreadable images are skipped and listed).

    Concurrent builds of the same cache (two trainings) are serialised by a lock; a full disk is a NoSpaceError.
    """
    folder = Path(cache_dir) / f"{split.label}-{split.name}-{size}px-{cache_key(split, size)}"
    with build_lock(folder):
        if not (folder / "meta.json").is_file():
            try:
                _build(split, size, folder, workers)
            except NoSpaceError:
                raise
            except OSError as error:
                raise no_space(error, cache_dir) or error from None
    meta = json.loads((folder / "meta.json").read_text())
    return CachedSplit(
        folder=folder,
        images=np.load(folder / "images.npy", mmap_mode="r"),
        targets=np.load(folder / "targets.npy"),
        readable=np.flatnonzero(np.load(folder / "keep.npy")),
        files=meta["files"],
        skipped=meta["skipped"],
    )


def _build(split: ImageFolderSplit, size: int, folder: Path, workers: int) -> None:
    """Decode and resize every photo into FOLDER.tmp, then rename it to FOLDER (a killed build leaves no FOLDER)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a killed build's leftovers (the lock says no one is writing them)
    tmp.mkdir(parents=True)
    try:
        _fill(split, size, tmp, workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-built cache must not keep the disk full
        raise
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _fill(split: ImageFolderSplit, size: int, tmp: Path, workers: int) -> None:
    images = np.lib.format.open_memmap(
        tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(split.samples), size, size, 3)
    )
    reserve(tmp / "images.npy", tmp.parent, f"caching {split.label} at {size}px")
    loader = DataLoader(_Decode(split.samples, size), batch_size=32, num_workers=workers, collate_fn=list)
    keep = np.ones(len(split.samples), dtype=bool)
    skipped: list[str] = []
    index = 0
    for batch in tqdm(loader, desc=f"caching {split.label} at {size}px", unit="batch"):
        for array, error in batch:
            images[index] = array
            if error:
                keep[index] = False
                skipped.append(error)
            index += 1
    images.flush()
    np.save(tmp / "keep.npy", keep)
    np.save(tmp / "targets.npy", np.array(split.targets, dtype=np.int64))
    meta = {"files": [str(p) for p, _ in split.samples], "skipped": skipped, "size": size}
    (tmp / "meta.json").write_text(json.dumps(meta))


class CachedImageDataset(Dataset):
    """A subset of a cached split as (transformed image, target) pairs."""

    def __init__(self, cached: CachedSplit, indices: list[int] | np.ndarray, transform):
        self.cached, self.indices, self.transform = cached, np.asarray(indices, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        index = int(self.indices[i])
        image = Image.fromarray(np.asarray(self.cached.images[index]))
        return self.transform(image), int(self.cached.targets[index])
