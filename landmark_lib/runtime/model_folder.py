"""What a model folder must hold before a server loads anything from it: export.json's values of the right types and
its serving settings unchanged since the export (their sha256, export_info.settings_sha256), every file it needs
recorded with its sha256 and matching it, labels.json's entries valid. backends.py loads the files that pass.

Without these checks a shuffled labels.json (when export.json recorded no checksum for it) answered Taj Mahal photos
with another landmark at 0.99, and an edited crop_pct silently degraded every answer.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import TypeGuard

from .. import bundle
from ..artifacts import checksums, export_info
from ..artifacts.export_info import ExportInfo
from ..labels import ClassInfo, entry_problem, read_labels
from ..preprocess_config import PreprocessConfig
from .resolve import ModelNotFoundError


class ModelFolderError(ModelNotFoundError):
    """An export folder whose files are damaged, mixed from several exports or do not fit each other."""


def read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFolderError(
            f"{path} is damaged ({what} cannot be read: {error}); restore the export folder or export it again."
        ) from None


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _values_problem(info: ExportInfo) -> str | None:
    """Why the values a server reads from export.json cannot be used, as the end of a sentence, or None."""
    serving = info.serving
    shapes: dict[str, tuple[object, type | tuple[type, ...]]] = {
        "preprocess": (serving.preprocess, dict),
        "onnx": (serving.onnx, (dict, type(None))),
        "onnx_int8": (serving.onnx_int8, (dict, type(None))),
        "speed": (serving.speed, (dict, type(None))),
        "files": (serving.files, dict),
        "num_classes": (info.report.num_classes, (int, type(None))),
    }
    for key, (value, kinds) in shapes.items():
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f'"{key}" is {value!r:.40}'
    for threshold in (serving.threshold, (serving.onnx_int8 or {}).get("threshold")):
        if threshold is not None and not (_number(threshold) and 0 <= threshold <= 1):
            return f'"threshold" is {threshold!r:.40}, not a probability'
    times = (serving.speed or {}).get("ms_per_photo") or {}
    if not isinstance(times, dict) or not all(_number(t) for t in times.values()):
        return f'"speed" holds {times!r:.40}, not times per backend'
    return None


def read_verified_info(model_path: Path) -> ExportInfo:
    """export.json of MODEL_PATH's folder (empty for a bare model.pt, whose classes and preprocessing are inside it),
    its values checked and its serving settings verified against the checksum every writer records."""
    path = model_path.parent / bundle.EXPORT_FILE
    try:
        info = export_info.read(model_path.parent)
    except export_info.ExportInfoError as error:
        raise ModelFolderError(str(error)) from None
    if not info.recorded:
        return info
    if info.serving.settings_sha256 is None or info.serving.files is None:
        raise ModelFolderError(
            f"{path} records no checksums (an export from before they were recorded), so its files and settings "
            f"cannot be verified; export it again, or if you trust this folder, run `landmark checksums {path.parent}`."
        )
    problem = _values_problem(info)
    if problem:
        raise ModelFolderError(f"{path} is damaged: {problem}; restore the export folder or export it again.")
    if info.serving.settings_sha256 != export_info.settings_sha256(info):
        raise ModelFolderError(
            f"{path}'s serving settings ({', '.join(export_info.SETTINGS)}) were changed after the export wrote them "
            "(their sha256 differs); restore the export folder or export it again."
        )
    return info


def check_file(folder: Path, name: str, info: ExportInfo) -> None:
    """FOLDER/NAME is the file the export wrote (sha256 in export.json), else ModelFolderError; nothing to check for a
    bare model.pt (no export.json)."""
    if not info.recorded:
        return
    problem = checksums.problem(folder, name, info.serving.files)
    if problem:
        raise ModelFolderError(problem)


def labels(folder: Path, info: ExportInfo) -> list[ClassInfo] | None:
    """FOLDER/labels.json, verified and every entry checked like a dataset's classes.json (None: no such file)."""
    path = folder / bundle.LABELS_FILE
    if not path.is_file():
        return None
    check_file(folder, bundle.LABELS_FILE, info)
    entries = read_json(path, "the class list")
    if not isinstance(entries, list):
        raise ModelFolderError(
            f"{path} is not a list of {{name, display_name, ...}} entries; restore the export folder or export it again."
        )
    problem = next((p for p in map(entry_problem, entries) if p), None)
    if problem:
        raise ModelFolderError(f"{path}: {problem}; restore the export folder or export it again.")
    return read_labels(path)


def preprocess(info: ExportInfo) -> PreprocessConfig | None:
    recorded = info.serving.preprocess
    if recorded is None:
        return None
    try:
        return PreprocessConfig.from_dict(recorded)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ModelFolderError(
            f"the preprocessing in {bundle.EXPORT_FILE} is malformed ({recorded!r:.80}); export the model again."
        ) from None
