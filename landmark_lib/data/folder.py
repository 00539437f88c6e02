"""The dataset layout (ROOT/{train,test}/<class>/*), class names, display names and places, checked up front."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BACKGROUND_CLASS = "no_landmark"  # a class folder of everyday photos: trained on, never shown as a landmark

Roots = str | Path | Sequence[str | Path]


def data_roots(data: Roots | None) -> list[Path]:
    """One dataset root or several (a run config from before multi-root training holds a single string)."""
    if data is None:
        return []
    if isinstance(data, (str, Path)):
        return [Path(data).expanduser()]
    return [Path(d).expanduser() for d in data]


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message names the problem and the fix."""


def display_name(folder: str) -> str:
    """'00.Haleakala_National_Park' -> 'Haleakala National Park'; 'taj_mahal' -> 'Taj Mahal'."""
    name = re.sub(r"^\d+\.", "", folder).replace("_", " ").strip()
    return name if any(c.isupper() for c in name) else name.title()


@dataclass
class ClassInfo:
    """What a user sees for a class: its display name and where it is."""

    name: str
    display_name: str
    city: str = ""
    country: str = ""
    lat: float | None = None
    lon: float | None = None

    def place(self) -> str:
        return ", ".join(p for p in (self.city, self.country) if p)


@dataclass
class ImageFolderSplit:
    """One split of one or several dataset roots: the files and their class indices, in a stable order.

    `sample_roots[i]` is the index in `roots` of the root sample i came from (validation is stratified by it).
    """

    roots: list[Path]
    name: str
    class_names: list[str]
    samples: list[tuple[Path, int]] = field(default_factory=list)
    sample_roots: list[int] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.roots[0]

    @property
    def label(self) -> str:
        """A short name for the roots together (cache folder names, reports)."""
        return "+".join(r.name for r in self.roots)

    @property
    def targets(self) -> list[int]:
        return [target for _, target in self.samples]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _open_root(root: Path, split: str) -> list[str]:
    """The class folders of ROOT/SPLIT, after checking that the layout is usable."""
    if not root.is_dir():
        raise DatasetError(
            f"Dataset folder {root} does not exist; pass --data with a folder holding train/<class>/*.jpg "
            "(e.g. ../shared/data/world_landmarks, or fetch the course set with `python -m landmark_lib.data download`)."
        )
    split_dir = root / split
    if not split_dir.is_dir():
        found = ", ".join(class_folders(root)[:5]) or "nothing"
        raise DatasetError(
            f"{root} has no {split}/ folder (found: {found}); the layout must be {root}/{split}/<class>/<image>."
        )
    folders = class_folders(split_dir)
    if not folders:
        raise DatasetError(f"{split_dir} has no class folders; put each class's images in {split_dir}/<class>/.")
    return folders


def open_split(roots: Roots, split: str = "train", class_names: list[str] | None = None) -> ImageFolderSplit:
    """List the images of ROOT/SPLIT for one root or several, checking the layout.

    Several roots merge by class folder name (the class list is the sorted union of their folders); class indices
    follow `class_names` (train's by default). Roots missing SPLIT are an error unless another root has it and
    `class_names` is given (a test split may come from only some roots).
    """
    paths = data_roots(roots)
    if not paths:
        raise DatasetError("No dataset folder given; pass --data with a folder holding train/<class>/*.jpg.")
    if class_names is not None and len(paths) > 1:
        paths_with_split = [r for r in paths if (r / split).is_dir()] or paths
    else:
        paths_with_split = paths
    per_root = {root: _open_root(root, split) for root in paths_with_split}
    names = class_names if class_names is not None else sorted({f for folders in per_root.values() for f in folders})
    index = {name: i for i, name in enumerate(names)}
    samples: list[tuple[Path, int]] = []
    sample_roots: list[int] = []
    for root_index, (root, folders) in enumerate(per_root.items()):
        split_dir = root / split
        unknown = sorted(set(folders) - set(names))
        if unknown:
            raise DatasetError(
                f"{split_dir} has classes that train/ does not have ({', '.join(unknown[:5])}); "
                "add them to train/ or remove them from this split."
            )
        for folder in folders:
            files = _image_files(split_dir / folder)
            if not files and split == "train":
                raise DatasetError(
                    f"Class folder {split_dir / folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                    "add photos or delete the folder."
                )
            samples.extend((f, index[folder]) for f in files)
            sample_roots.extend([root_index] * len(files))
    return ImageFolderSplit(roots=list(per_root), name=split, class_names=list(names), samples=samples, sample_roots=sample_roots)


def load_class_info(roots: Roots, class_names: list[str]) -> list[ClassInfo]:
    """Display names and places from each root's classes.json when present, else derived from folder names.

    Entries for the same class in several roots must agree; a conflict is an error naming both files.
    """
    entries: dict[str, dict] = {}
    origin: dict[str, Path] = {}
    for root in data_roots(roots):
        path = root / "classes.json"
        if not path.is_file():
            continue
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise DatasetError(f"{path} is not a list of {{name, display_name, city, country, lat, lon}} entries ({error}); fix or delete it.") from None
        if not isinstance(listed, list):
            raise DatasetError(f"{path} is not a list of {{name, display_name, city, country, lat, lon}} entries (it holds a {type(listed).__name__}); fix or delete it.")
        by_name = {e["name"]: e for e in (_checked_entry(path, e) for e in listed)}
        for name, entry in by_name.items():
            info = _class_info(name, entry)
            if name in entries and asdict(_class_info(name, entries[name])) != asdict(info):
                raise DatasetError(f"classes.json entries for '{name}' differ between {origin[name]} and {path}; make them the same.")
            entries.setdefault(name, entry)
            origin.setdefault(name, path)
    return [_class_info(name, entries.get(name, {})) for name in class_names]


def _checked_entry(path: Path, entry: object) -> dict:
    """ENTRY of PATH (classes.json) if its fields have the types and ranges a ClassInfo needs, else DatasetError.

    Checked here, before training: a string latitude or a number as display name would otherwise fail at export
    or put a landmark at the wrong place on the map.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise DatasetError(f'{path}: every entry needs a "name" (the class folder), got {entry!r:.80}; fix or delete the file.')
    for key in ("display_name", "city", "country"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise DatasetError(f'{path}: "{key}" of {entry["name"]!r} must be text, got {entry[key]!r:.40}; fix or delete the file.')
    for key, limit in (("lat", 90), ("lon", 180)):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > limit):
            raise DatasetError(f'{path}: "{key}" of {entry["name"]!r} must be a number of degrees within +-{limit} or null, got {value!r:.40}; fix or delete the file.')
    return entry


def _class_info(name: str, entry: dict) -> ClassInfo:
    return ClassInfo(
        name=name,
        display_name=entry.get("display_name") or display_name(name),
        city=entry.get("city") or "",
        country=entry.get("country") or "",
        lat=entry.get("lat"),
        lon=entry.get("lon"),
    )
