"""A dataset's classes.json: display names and places of its class folders, checked before any training starts."""

from __future__ import annotations

import json
from pathlib import Path

from ..labels import ClassInfo, entry_problem
from .folder import DatasetError, Roots, data_roots


def load_class_info(roots: Roots, class_names: list[str]) -> list[ClassInfo]:
    """Display names and places from each dataset root's classes.json when present, else from the folder names.

    Entries for the same class in several roots must agree; a conflict is an error naming both files.
    """
    entries: dict[str, ClassInfo] = {}
    origin: dict[str, Path] = {}
    for root in data_roots(roots):
        path = root / "classes.json"
        if not path.is_file():
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise DatasetError(
                f"{path} is not a list of {{name, display_name, city, country, lat, lon}} entries ({error}); fix or delete it."
            ) from None
        if not isinstance(raw, list):
            raise DatasetError(
                f"{path} is not a list of {{name, display_name, city, country, lat, lon}} entries (it holds a {type(raw).__name__}); fix or delete it."
            )
        listed = {e["name"]: ClassInfo.from_dict(e) for e in (_checked_entry(path, e) for e in raw)}
        for name, info in listed.items():
            if name in entries and entries[name] != info:
                raise DatasetError(
                    f"classes.json entries for '{name}' differ between {origin[name]} and {path}; make them the same."
                )
            entries.setdefault(name, info)
            origin.setdefault(name, path)
    return [entries.get(name) or ClassInfo.from_dict({}, name) for name in class_names]


def _checked_entry(path: Path, entry: object) -> dict:
    """ENTRY of PATH (classes.json) if its fields have the types and ranges a ClassInfo needs (labels.entry_problem),
    else DatasetError: checked here, before training, rather than at export or on the map."""
    problem = entry_problem(entry)
    if problem:
        raise DatasetError(f"{path}: {problem}; fix or delete the file.")
    return entry  # type: ignore[return-value]
