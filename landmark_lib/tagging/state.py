"""Whose tags an output holds, and who is writing it: a small sidecar (`tags.csv.tagging.json` beside a file,
`_tagging.json` inside a Parquet or Ray output folder) records the photo folder, the model (sha256 of its model.pt)
and the threshold, so a rerun resumes only its own output and never mixes in rows of another folder or model; a lock
file beside the output (`.tags.csv.lock`, naming the process) keeps a second run from writing the same rows again.
--overwrite replaces only what landmark tag wrote: anything else in the way is refused, never deleted."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import atomic
from ..artifacts import checksums
from ..errors import LandmarkError
from ..gallery.store import GALLERY_FILE
from ..serve.service import LandmarkService
from .rows import ROW_FORMAT

IDENTITY_KEYS = ("folder", "model_sha256", "threshold", "gallery", "row_format")


def sidecar(out: Path, folder: bool) -> Path:
    """Where OUT's record of its folder and model is kept (inside OUT when OUT is a FOLDER of part files)."""
    return out / "_tagging.json" if folder else out.with_name(f"{out.name}.tagging.json")


def identity(folder: str, service: LandmarkService) -> dict:
    """What a resumed run must share with the run that started OUT: the folder, the model's weights, the threshold,
    the gallery (sha256 of its gallery.json: teaching or removing a landmark changes the answers) and the row layout."""
    export = service.model_path if service.model_path.is_dir() else service.model_path.parent
    gallery = service.gallery.gallery.folder / GALLERY_FILE if service.gallery else None
    return {
        "folder": folder,
        "model_sha256": service.identity.model_sha256,
        "threshold": service.threshold,
        "gallery": checksums.sha256_file(gallery) if gallery else None,
        "row_format": ROW_FORMAT,
        "model": str(export),
        "backend": service.backend,
    }


NOT_OURS = "was not written by landmark tag; choose another --out (--overwrite replaces only outputs of landmark tag)."
# What a folder output of landmark tag holds: its sidecar, the local engine's part files (and their temp files, left
# by a kill), Ray's part files.
OUR_SUFFIXES = (".parquet", ".json", ".tmp")


def remove(out: Path) -> None:
    """--overwrite: OUT and its sidecar go, only if landmark tag wrote them (check_ours); nothing is deleted otherwise."""
    check_ours(out)
    if out.is_dir() and not out.is_symlink():
        for part in out.iterdir():
            part.unlink()
        out.rmdir()
    elif out.exists():
        out.unlink()
    sidecar(out, folder=False).unlink(missing_ok=True)


def check_ours(out: Path) -> None:
    """LandmarkError unless OUT is absent or landmark tag wrote it: a file with its sidecar beside it, or a folder
    holding its sidecar and part files only."""
    if out.is_dir() and not out.is_symlink():
        if not sidecar(out, folder=True).is_file():
            raise LandmarkError(f"{out} is a folder that {NOT_OURS}")
        others = [p.name for p in out.iterdir() if p.is_symlink() or not p.is_file() or p.suffix not in OUR_SUFFIXES]
        if others:
            raise LandmarkError(
                f"{out} holds files landmark tag did not write ({', '.join(sorted(others)[:3])}); move them out of it "
                "or choose another --out."
            )
    elif (out.exists() or out.is_symlink()) and (
        out.is_symlink() or not out.is_file() or not sidecar(out, folder=False).is_file()
    ):
        raise LandmarkError(f"{out} exists and {NOT_OURS}")


def check_apart(photo_dir: Path, out: Path) -> None:
    """OUT must not be the photo folder or a folder holding it (replacing it would delete photos)."""
    photos, target = photo_dir.resolve(), out.resolve()
    if target == photos or target in photos.parents:
        raise LandmarkError(f"--out {out} is the photo folder or holds it; choose an --out outside {photo_dir}.")


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT for this run: two taggers appending to one output duplicate every row. A second run fails at once
    naming the process that holds it; the lock goes with the process (flock), however it ends."""
    path = out.with_name(f".{out.name}.lock")
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run, closed below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LandmarkError(
                f"{out} is being written by another landmark tag (process {holder}); wait for it to finish, or "
                "choose another --out."
            ) from None
        try:  # the previous holder may have removed the file between our open and our lock: lock the current one
            current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    handle.truncate(0)
    handle.write(f"{os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def claim(out: Path, wanted: dict, overwrite: bool, folder: bool = False) -> bool:
    """Make OUT (a file, or a FOLDER of part files) this run's output; True when it already holds rows of the same
    folder, model and threshold (resume them). Any other existing output is refused unless OVERWRITE."""
    if overwrite:
        remove(out)
    recorded_path = sidecar(out, folder)
    if folder and out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # a kill before the sidecar was written left the folder empty
    if out.exists() and not recorded_path.exists():
        raise LandmarkError(f"{out} exists and {NOT_OURS}")
    if recorded_path.exists():
        recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
        differ = [k for k in IDENTITY_KEYS if recorded.get(k) != wanted[k]]
        if differ:
            raise LandmarkError(
                f"{out} holds tags of {recorded.get('folder')} by model {recorded.get('model')} "
                f"(another {' and '.join(differ)}); pass --overwrite to replace it, or choose another --out."
            )
        return out.exists()
    record(out, wanted, folder)
    return False


def record(out: Path, wanted: dict, folder: bool) -> None:
    """Write OUT's sidecar (atomically: it is whole or absent)."""
    atomic.write_text(sidecar(out, folder), json.dumps(wanted, indent=2) + "\n")
