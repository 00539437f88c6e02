"""The dataset layout (ROOT/{train,test}/<class>/*), class names, display names and places, checked up front."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
    """One split of the dataset: the files and their class indices, in a stable order."""

    root: Path
    name: str
    class_names: list[str]
    samples: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def targets(self) -> list[int]:
        return [target for _, target in self.samples]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def open_split(root: str | Path, split: str = "train", class_names: list[str] | None = None) -> ImageFolderSplit:
    """List the images of ROOT/SPLIT, checking the layout; class indices follow `class_names` (train's by default)."""
    root = Path(root).expanduser()
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
    names = class_names if class_names is not None else folders
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise DatasetError(
            f"{split_dir} has classes that train/ does not have ({', '.join(unknown[:5])}); "
            "add them to train/ or remove them from this split."
        )
    index = {name: i for i, name in enumerate(names)}
    samples: list[tuple[Path, int]] = []
    for folder in folders:
        files = _image_files(split_dir / folder)
        if not files and split == "train":
            raise DatasetError(
                f"Class folder {split_dir / folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add photos or delete the folder."
            )
        samples.extend((f, index[folder]) for f in files)
    return ImageFolderSplit(root=root, name=split, class_names=list(names), samples=samples)


def load_class_info(root: str | Path, class_names: list[str]) -> list[ClassInfo]:
    """Display names and places from ROOT/classes.json when present, else derived from folder names."""
    path = Path(root) / "classes.json"
    entries = {}
    if path.is_file():
        entries = {e["name"]: e for e in json.loads(path.read_text(encoding="utf-8"))}
    infos = []
    for name in class_names:
        entry = entries.get(name, {})
        infos.append(
            ClassInfo(
                name=name,
                display_name=entry.get("display_name") or display_name(name),
                city=entry.get("city", ""),
                country=entry.get("country", ""),
                lat=entry.get("lat"),
                lon=entry.get("lon"),
            )
        )
    return infos
