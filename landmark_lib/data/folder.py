"""The dataset layout (ROOT/{train,test}/<class>/*) and its class folders, checked before any work starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LandmarkError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

Roots = str | Path | Sequence[str | Path]


def data_roots(data: Roots | None) -> list[Path]:
    """One dataset root or several (a run config from before multi-root training holds a single string)."""
    if data is None:
        return []
    if isinstance(data, (str, Path)):
        return [Path(data).expanduser()]
    return [Path(d).expanduser() for d in data]


class DatasetError(LandmarkError, ValueError):
    """A dataset folder that cannot be used; the message names the problem and the fix."""


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
            "(e.g. ../shared/data/world_landmarks, or fetch the course set with `landmark data download`)."
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
    return ImageFolderSplit(
        roots=list(per_root), name=split, class_names=list(names), samples=samples, sample_roots=sample_roots
    )
