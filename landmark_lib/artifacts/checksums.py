"""sha256 of every file an export writes, recorded in its export.json and checked before a server loads them.

A shuffled labels.json, a model.onnx copied from another export or a truncated download would otherwise load
fine and make every answer silently wrong. To record the checksums of an export folder written before the exporter
recorded them (only for files you trust, e.g. the committed models/default):

    landmark checksums models/default          (also: python -m landmark_lib.artifacts.checksums models/default)
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from ..bundle import CARD_FILE, EXPORT_FILE, FILES
from ..errors import LandmarkError
from . import export_info

# What an export folder may hold besides export.json itself (the model card and eval folders are documentation).
EXPORTED_FILES = tuple(name for name in FILES if name not in (EXPORT_FILE, CARD_FILE))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record(folder: str | Path, names: tuple[str, ...] = EXPORTED_FILES) -> dict:
    """{name: {sha256, bytes}} for the files of NAMES that exist in FOLDER (what export.json records)."""
    folder = Path(folder)
    return {
        name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in names
        if (folder / name).is_file()
    }


def problem(folder: str | Path, name: str, files: dict | None) -> str | None:
    """Why FOLDER/NAME is not the file the export recorded (not recorded, missing, other size, other sha256), or None
    if it is. A file FILES records nothing about (an export from before checksums) is not verified, so not served."""
    entry = files.get(name) if isinstance(files, dict) else None
    path = Path(folder) / name
    if not isinstance(entry, dict):
        return (
            f"{Path(folder) / EXPORT_FILE} records no checksum for {name}, so it cannot be verified; export it again, "
            f"or if you trust this folder, record its checksums with `landmark checksums {folder}`."
        )
    if not path.is_file():
        return f"{path} is missing although {EXPORT_FILE} records it; restore the export folder or export it again."
    if path.stat().st_size != entry.get("bytes", path.stat().st_size) or sha256_file(path) != entry.get("sha256"):
        return (
            f"{path} is not the file the export wrote (its sha256 differs from {EXPORT_FILE}'s): it is damaged or "
            "comes from another export; restore the export folder or export it again."
        )
    return None


def run(args: argparse.Namespace) -> None:
    """`landmark checksums FOLDER`: record the sha256 of FOLDER's files (and, by export_info.write, of its serving
    settings) in its export.json and print them."""
    if not (Path(args.folder) / EXPORT_FILE).is_file():
        raise LandmarkError(f"cannot read {Path(args.folder) / EXPORT_FILE} (no such file); pass an export folder.")
    info = export_info.read(args.folder)
    info.serving.files = record(args.folder)
    export_info.write(args.folder, info)
    for name, entry in info.serving.files.items():
        print(f"{entry['sha256']}  {name} ({entry['bytes']} bytes)")


if (
    __name__ == "__main__"
):  # the form older notes use; the same as `landmark checksums FOLDER` (the cli package not imported:
    import sys  # serve/ imports this module, and the layering test keeps the training options out of its reach)

    parser = argparse.ArgumentParser(description="Record the sha256 of an export folder's files in its export.json.")
    parser.add_argument("folder", type=Path, help="export folder holding export.json")
    try:
        run(parser.parse_args())
    except LandmarkError as error:
        sys.exit(f"error: {error}")
