"""Tag a folder of photos: landmark tag PHOTO_DIR --out tags.jsonl|tags.csv|tags.parquet [--engine local|ray]

Every photo (recursively, following symlinked folders once each) gets its top-5 landmarks and the best one's place;
unreadable files, broken links and folders that cannot be listed get a row with the reason, so the output accounts
for every file. Rows are written batch by batch as photos are tagged (memory does not grow with the library); a rerun
with the same --out skips the photos already tagged (same relative path, size and mtime) and appends the rest, so a
killed run loses nothing. Photos are decoded by --workers threads while the model runs on the previous batch.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .. import threads
from ..errors import LandmarkError
from ..serve.service import LandmarkService
from . import state as tag_state
from .batch import Decoded, decode, tag_batch
from .photo_walk import Found, display, walk_photos
from .writers import WRITERS, stored_key


def decoded(service: LandmarkService, files: Iterable[Found], workers: int, ahead: int) -> Iterator[Decoded]:
    """FILES with their photos, in order, decoded by WORKERS threads at most AHEAD files in advance (PIL decodes
    without the GIL, so this overlaps decoding with the model; memory stays bounded by AHEAD photos)."""
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending: deque[tuple[Found, Future | str]] = deque()
        for found in files:
            pending.append((found, found.problem or pool.submit(decode, service, found.path)))
            while len(pending) >= ahead or (pending and isinstance(pending[0][1], str)):
                first, job = pending.popleft()
                yield first, job if isinstance(job, str) else job.result()
        for first, job in pending:
            yield first, job if isinstance(job, str) else job.result()


def batches(items: Iterator[Decoded], size: int) -> Iterator[list[Decoded]]:
    batch: list[Decoded] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tag_files(
    service: LandmarkService, folder: Path, files: Iterable[Found], batch_size: int = 16, workers: int = 2
) -> Iterator[list[dict]]:
    """The rows of FILES (found under FOLDER), a batch at a time, in order: the local engine."""
    for batch in batches(decoded(service, files, workers, ahead=2 * batch_size), batch_size):
        yield tag_batch(service, folder, batch)


def not_done(files: Iterable[Found], folder: Path, out: Path, done: set, counts: dict) -> Iterator[Found]:
    """FILES less those OUT already has a row for (same relative path, size and mtime): what a rerun still tags."""
    for found in files:
        if stored_key(out, (display(found.path.relative_to(folder)), found.size, found.mtime_ns)) in done:
            counts["already"] += 1
        else:
            yield found


def tag_to(service: LandmarkService, args: argparse.Namespace, resume: bool) -> dict:
    """Tag ARGS.photo_dir into ARGS.out batch by batch, skipping what a previous run wrote; the counts of rows."""
    folder, out, kind = args.photo_dir, args.out, WRITERS[args.out.suffix.lower()]
    writer = kind(out)  # first: it cuts off a line torn by a kill
    done = kind.done(out) if resume else set()
    counts = {"tagged": 0, "unreadable": 0, "already": 0}
    files = not_done(walk_photos(folder), folder, out, done, counts)
    try:
        with tqdm(unit="photo", desc="Tagging") as progress:
            for rows in tag_files(service, folder, files, args.batch_size, args.workers):
                writer.write(rows)
                failed = sum(1 for r in rows if r["error"])
                counts["unreadable"] += failed
                counts["tagged"] += len(rows) - failed
                progress.update(len(rows))
    finally:
        writer.close()
    return counts


def run(args: argparse.Namespace) -> None:
    """`landmark tag PHOTO_DIR --out FILE`: rows streamed to FILE (resuming it), then one summary line."""
    args.workers = args.workers or threads.count()
    if args.engine == "ray":
        from .ray_engine import run_ray

        return run_ray(args)
    if "://" in str(args.photo_dir):
        raise LandmarkError(f"{args.photo_dir} is an object-storage URI; tag it with --engine ray.")
    args.photo_dir = Path(args.photo_dir)
    tag_state.check_apart(args.photo_dir, args.out)
    service = LandmarkService.from_spec(args.model, threshold=args.threshold, gallery=args.gallery)
    wanted = tag_state.identity(str(args.photo_dir.resolve()), service)
    try:
        with tag_state.locked(args.out):
            resume = tag_state.claim(args.out, wanted, args.overwrite, folder=args.out.suffix.lower() == ".parquet")
            counts = tag_to(service, args, resume)
    except OSError as error:  # a full disk (atomic.NoSpaceError names the folder), a read-only folder, ...
        raise LandmarkError(
            f"could not write {args.out}: {error.strerror or error}; the rows written so far are kept, "
            "rerun the same command to tag the rest."
        ) from None
    skipped = f", {counts['already']} already tagged" if counts["already"] else ""
    print(
        f"Tagged {counts['tagged']} photos ({counts['unreadable']} unreadable, listed with an error{skipped}) "
        f"-> {args.out}"
    )
