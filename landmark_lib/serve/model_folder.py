"""What a model folder must hold before a server loads anything from it: export.json's values of the right types and
its serving settings unchanged since the export (their sha256), every file it needs recorded with its sha256 and
matching it, labels.json's entries valid. backends.py loads the files that pass."""

from __future__ import annotations

import json
from pathlib import Path

from .. import bundle, checksums
from ..labels import ClassInfo, entry_problem, read_labels
from ..preprocess_config import PreprocessConfig
from .resolve import ModelNotFoundError


class ModelFolderError(ModelNotFoundError):
    """An export folder whose files are damaged, mixed from several exports or do not fit each other."""


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFolderError(
            f"{path} is damaged ({what} cannot be read: {error}); restore the export folder or export it again."
        ) from None


# export.json's keys a server reads, and the JSON types each may have (None: absent or null).
_INFO_TYPES = {
    "preprocess": (dict,),
    "threshold": (int, float, type(None)),
    "num_classes": (int, type(None)),
    "onnx": (dict, type(None)),
    "onnx_int8": (dict, type(None)),
    bundle.SPEED_KEY: (dict, type(None)),
    checksums.FILES_KEY: (dict,),
    bundle.SETTINGS_KEY: (str,),
}


def _info_problem(info: dict) -> str | None:
    """Why the values a server reads from export.json cannot be used, as the end of a sentence, or None."""
    for key, types in _INFO_TYPES.items():
        value = info.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            return f'"{key}" is {value!r:.40}' if key in info else f'"{key}" is missing'
    thresholds = [info.get("threshold"), (info.get("onnx_int8") or {}).get("threshold")]
    if any(
        t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 1)
        for t in thresholds
    ):
        return f"a threshold is not a probability ({thresholds})"
    times = (info.get(bundle.SPEED_KEY) or {}).get("ms_per_photo") or {}
    if not isinstance(times, dict) or not all(isinstance(t, (int, float)) for t in times.values()):
        return f'"{bundle.SPEED_KEY}" holds {times!r:.40}, not times per backend'
    if info.get("num_classes") is not None and info["num_classes"] < 1:
        return f'"num_classes" is {info["num_classes"]}'
    return None


def export_info(model_path: Path) -> dict:
    """export.json of MODEL_PATH's folder ({} for a bare model.pt), its values checked and its serving settings
    verified against the checksum every writer of export.json records (bundle.write_info)."""
    path = model_path.parent / bundle.EXPORT_FILE
    info = _read_json(path, "the export record") if path.is_file() else {}
    if not isinstance(info, dict):
        raise ModelFolderError(
            f"{path} is not an export record (a JSON object); restore the export folder or export it again."
        )
    if not info:
        return info
    if bundle.SETTINGS_KEY not in info or checksums.FILES_KEY not in info:
        raise ModelFolderError(
            f"{path} records no checksums (an export from before they were recorded), so its files and settings "
            f"cannot be verified; export it again, or if you trust this folder, run `landmark checksums {path.parent}`."
        )
    problem = _info_problem(info)
    if problem:
        raise ModelFolderError(f"{path} is damaged: {problem}; restore the export folder or export it again.")
    if info[bundle.SETTINGS_KEY] != bundle.settings_sha256(info):
        raise ModelFolderError(
            f"{path}'s serving settings ({', '.join(bundle.SERVING_SETTINGS)}) were changed after the export wrote "
            "them (their sha256 differs); restore the export folder or export it again."
        )
    return info


def check_file(folder: Path, name: str, info: dict) -> None:
    """FOLDER/NAME is the file the export wrote (sha256 in export.json), else ModelFolderError; not checked only
    for a bare model.pt (no export.json: its classes and preprocessing are inside it)."""
    if not info:
        return
    problem = checksums.problem(folder, name, info.get(checksums.FILES_KEY))
    if problem:
        raise ModelFolderError(problem)


def labels(folder: Path, info: dict) -> list[ClassInfo] | None:
    path = folder / bundle.LABELS_FILE
    if not path.is_file():
        return None
    check_file(folder, bundle.LABELS_FILE, info)
    labels = _read_json(path, "the class list")
    if not isinstance(labels, list):
        raise ModelFolderError(
            f"{path} is not a list of {{name, display_name, ...}} entries; restore the export folder or export it again."
        )
    problem = next((p for p in map(entry_problem, labels) if p), None)
    if problem:
        raise ModelFolderError(f"{path}: {problem}; restore the export folder or export it again.")
    return read_labels(path)


def preprocess(info: dict) -> PreprocessConfig | None:
    if "preprocess" not in info:
        return None
    try:
        return PreprocessConfig.from_dict(info["preprocess"])
    except (KeyError, TypeError, ValueError):
        raise ModelFolderError(
            f"the preprocessing in {bundle.EXPORT_FILE} is malformed ({info['preprocess']!r:.80}); export the model again."
        ) from None
