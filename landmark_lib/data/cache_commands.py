"""`landmark cache info | clear`: what the training cache holds (resized photos, frozen features), how big it is,
and freeing it. Everything in it is rebuilt on demand by the next `landmark train`, at the cost of its first pass.

Entries in use are left alone: a photo cache whose build lock is held, or a feature store another live process is
writing (its temporary files carry that process's id).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import time
from pathlib import Path

from ..atomic import process_alive
from ..errors import LandmarkError


def cache_dir(given: Path | None) -> Path:
    """--cache-dir, else $LANDMARK_CACHE, else ~/.cache/landmark_tagger (data/cache.py's DEFAULT_CACHE_DIR)."""
    return given or Path(os.environ.get("LANDMARK_CACHE", Path.home() / ".cache" / "landmark_tagger"))


def size_of(path: Path) -> int:
    """Bytes on disk of PATH and everything under it (allocated blocks: what freeing it gives back)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def kind(entry: Path) -> str:
    if entry.name.startswith("features-"):
        return "frozen features"
    return "resized photos"


def in_use(entry: Path) -> bool:
    """A build is writing ENTRY: its lock is held (photo caches), or a live process's temp file is in it (features)."""
    lock = entry.with_name(entry.name.removesuffix(".tmp") + ".lock")  # a photo cache is built in FOLDER.tmp
    if lock.is_file():
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    for tmp in [*entry.glob("*.tmp.npy"), *entry.glob("*.parts/.*.tmp")]:
        pid = tmp.name.split(".")[-3]
        if pid.isdigit() and process_alive(int(pid)):
            return True
    return False


def entries(folder: Path) -> list[Path]:
    """The cache's entries: one folder per photo cache or feature store (lock files go with their folder)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir())


def _mb(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def run_info(args: argparse.Namespace) -> None:
    """`landmark cache info`: each entry with its kind, size and last use, then the total and the free space."""
    folder = cache_dir(args.cache_dir)
    found = entries(folder)
    if not found:
        print(f"{folder}: empty (the first `landmark train` fills it)")
        return
    total = 0
    for entry in found:
        size = size_of(entry)
        total += size
        partial = " (partly built: the next run continues it)" if any(entry.glob("*.parts")) else ""
        busy = " (in use by a running build)" if in_use(entry) else ""
        used = time.strftime("%Y-%m-%d", time.localtime(entry.stat().st_mtime))
        print(f"{_mb(size):>8}  {kind(entry):<15}  {used}  {entry.name}{partial}{busy}")
    free = shutil.disk_usage(folder).free
    print(
        f"{_mb(total)} in {len(found)} entries in {folder}; {_mb(free)} free on its disk. `landmark cache clear` frees it."
    )


def run_clear(args: argparse.Namespace) -> None:
    """`landmark cache clear`: delete every entry not in use (or only those of --only); says what it freed."""
    folder = cache_dir(args.cache_dir)
    if args.cache_dir is not None and not folder.is_dir():
        raise LandmarkError(f"{folder} is not a folder; pass the --cache-dir your trainings use.")
    freed, kept = 0, []
    for entry in entries(folder):
        if args.only and kind(entry) != {"photos": "resized photos", "features": "frozen features"}[args.only]:
            continue
        if in_use(entry):
            kept.append(entry.name)
            continue
        freed += size_of(entry)
        shutil.rmtree(entry)
        entry.with_name(entry.name + ".lock").unlink(missing_ok=True)
    print(f"freed {_mb(freed)} in {folder}" + (f"; kept {len(kept)} in use: {', '.join(kept)}" if kept else ""))
