"""Whose tags an output holds: a small sidecar (`tags.csv.tagging.json` beside a file, `_tagging.json` inside a
Parquet or Ray output folder) records the photo folder, the model (sha256 of its model.pt) and the threshold, so
a rerun resumes only its own output and never mixes in rows of another folder or model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import atomic
from ..artifacts import checksums
from ..errors import LandmarkError
from ..gallery.store import GALLERY_FILE
from ..serve.service import LandmarkService

IDENTITY_KEYS = ("folder", "model_sha256", "threshold", "gallery")


def sidecar(out: Path, folder: bool) -> Path:
    """Where OUT's record of its folder and model is kept (inside OUT when OUT is a FOLDER of part files)."""
    return out / "_tagging.json" if folder else out.with_name(f"{out.name}.tagging.json")


def identity(folder: str, service: LandmarkService) -> dict:
    """What a resumed run must share with the run that started OUT: the folder, the model's weights, the threshold
    and the gallery (sha256 of its gallery.json: teaching or removing a landmark changes the answers)."""
    export = service.model_path if service.model_path.is_dir() else service.model_path.parent
    gallery = service.gallery.gallery.folder / GALLERY_FILE if service.gallery else None
    return {
        "folder": folder,
        "model_sha256": service.identity.model_sha256,
        "threshold": service.threshold,
        "gallery": checksums.sha256_file(gallery) if gallery else None,
        "model": str(export),
        "backend": service.backend,
    }


def remove(out: Path) -> None:
    """--overwrite: OUT (a file, or a folder with its sidecar inside) and a sidecar beside it go."""
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink(missing_ok=True)
    sidecar(out, folder=False).unlink(missing_ok=True)


def claim(out: Path, wanted: dict, overwrite: bool, folder: bool = False) -> bool:
    """Make OUT (a file, or a FOLDER of part files) this run's output; True when it already holds rows of the same
    folder, model and threshold (resume them). Any other existing output is refused unless OVERWRITE."""
    if overwrite:
        remove(out)
    recorded_path = sidecar(out, folder)
    if folder and out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # a kill before the sidecar was written left the folder empty
    if out.exists() and not recorded_path.exists():
        raise LandmarkError(
            f"{out} exists and was not written by landmark tag; pass --overwrite to replace it, or choose another --out."
        )
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
