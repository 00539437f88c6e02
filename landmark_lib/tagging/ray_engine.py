"""`landmark tag ... --engine ray`: the same tagging as a Ray Data pipeline, to tag a library on many machines.

A local folder is listed by the local engine's walk (photo_walk: every file gets its row, broken links and
unlistable folders included) and each actor reads its files itself (a FIFO or an unreadable file is that file's error
row, never the job's failure); an object-storage URI that pyarrow reads (s3://bucket/photos, gs://..., with the
credentials of the machines) goes through read_binary_files. Either way map_batches(TagPhotos) runs on an actor pool
of --workers actors, each loading the service once, and the rows (tag.tag_batch builds both engines') are written to
a hidden folder beside --out, which replaces --out only when the run has finished. A Ray run does not resume.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset
import pyarrow.fs

from ..data.folder import IMAGE_EXTENSIONS
from ..errors import LandmarkError
from ..serve.service import LandmarkService
from . import state as tag_state
from .batch import decode, tag_batch
from .photo_walk import Found, walk_photos
from .writers import table


class TagPhotos:
    """The map_batches UDF: one service per actor (loaded once), a batch of files in, their rows out."""

    def __init__(self, model: str | None, threshold: float | None, source: str, gallery: str | None = None):
        self.service = LandmarkService.from_spec(model, threshold=threshold, num_threads=1, gallery=gallery)
        self.filesystem, root = pyarrow.fs.FileSystem.from_uri(source)
        self.root = Path(root)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if "bytes" not in batch.column_names:  # a local folder's listing: each file is read here, like the local engine
            found = [Found(Path(r["path"]), r["size"], r["mtime_ns"], r["problem"]) for r in batch.to_pylist()]
            items = [(f, f.problem or decode(self.service, f.path)) for f in found]
            return table(tag_batch(self.service, self.root, items))
        paths, blobs = batch.column("path").to_pylist(), batch.column("bytes").to_pylist()
        infos = self.filesystem.get_file_info(paths)
        items = [
            (Found(Path(path), info.size, info.mtime_ns), decode(self.service, Path(path), data))
            for path, data, info in zip(paths, blobs, infos)
        ]
        return table(tag_batch(self.service, self.root, items))


def source_uri(photo_dir: str | Path) -> str:
    """PHOTO_DIR as pyarrow names it: a URI as given, a local folder as its absolute path."""
    return str(photo_dir) if "://" in str(photo_dir) else str(Path(photo_dir).resolve())


def start_ray(args: argparse.Namespace) -> bool:
    """Join --ray-address, or start a local Ray with one CPU per actor plus one for reading; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        ray.init(num_cpus=args.workers + 1, include_dashboard=False)
    return True


def pipeline(args: argparse.Namespace, source: str):
    """The lazy Dataset of rows (nothing runs until it is written)."""
    import ray.data

    if "://" in source:
        extensions = sorted(
            {e.lstrip(".") for e in IMAGE_EXTENSIONS} | {e.lstrip(".").upper() for e in IMAGE_EXTENSIONS}
        )
        files = ray.data.read_binary_files(source, include_paths=True, file_extensions=extensions)
    else:
        listing = [
            {"path": str(f.path), "size": f.size, "mtime_ns": f.mtime_ns, "problem": f.problem}
            for f in walk_photos(Path(source))
        ]
        files = ray.data.from_items(listing)
    return files.map_batches(
        TagPhotos,
        fn_constructor_kwargs={
            "model": args.model,
            "threshold": args.threshold,
            "source": source,
            "gallery": str(args.gallery) if args.gallery else None,
        },
        batch_size=args.batch_size,
        batch_format="pyarrow",
        concurrency=args.workers,
        num_cpus=1,
    )


def run_ray(args: argparse.Namespace) -> None:
    """Tag ARGS.photo_dir on Ray into the folder ARGS.out (Parquet or JSONL part files), then one summary line."""
    import ray

    out, source = Path(args.out), source_uri(args.photo_dir)
    if out.suffix.lower() == ".csv":
        raise LandmarkError("the Ray engine writes Parquet or JSONL; pass --out tags.parquet or --out tags.jsonl.")
    if "://" not in source:
        tag_state.check_apart(Path(source), out)
    wanted = tag_state.identity(source, LandmarkService.from_spec(args.model, threshold=args.threshold))
    with tag_state.locked(out):
        if out.exists() and not args.overwrite:
            raise LandmarkError(
                f"{out} exists and the Ray engine does not resume; pass --overwrite to replace it, or choose another --out."
            )
        if out.exists():  # refused (nothing deleted) unless landmark tag wrote it, before any work is done
            tag_state.check_ours(out)
        staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)  # ours: left by a killed run of this process id
        started = start_ray(args)
        try:
            rows = pipeline(args, source)
            if out.suffix.lower() == ".parquet":
                rows.write_parquet(str(staging.resolve()))
            else:
                rows.write_json(str(staging.resolve()), double_precision=15)  # pandas' default rounds to 10 digits
            tag_state.record(staging, wanted, folder=True)
            if out.exists():
                tag_state.remove(out)
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if started:
                ray.shutdown()
    fmt = "parquet" if out.suffix.lower() == ".parquet" else "json"
    errors = pyarrow.dataset.dataset(out, format=fmt).to_table(columns=["error"]).column("error").to_pylist()
    failed = sum(1 for e in errors if e)
    print(f"Tagged {len(errors) - failed} photos ({failed} unreadable, listed with an error) on Ray -> {out}/")
