"""The photo index an export ships (index.npz): the embedding of every training photo, landmarks and no-landmark
photos alike, with its label and collection. The recognition score (index/score.py) compares a photo with the
nearest photos of the landmark it was given and with the nearest no-landmark photos; a gallery's photos join it as
more entries (IndexScorer.with_entries), so taught and trained landmarks are compared with the same negatives.

Embeddings are stored as float16 (half the bytes, cosines within 1e-3); export.json records the file's sha256
like every exported file, and `load` checks shapes, values and labels before a server uses it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts.checksums import problem
from ..artifacts.export_info import ExportInfo
from ..bundle import EXPORT_FILE, INDEX_FILE
from ..errors import LandmarkError

NORM_TOLERANCE = 0.02  # float16 rounding keeps unit vectors within ~1e-3 of length 1


class PhotoIndexError(LandmarkError, ValueError):
    """An index.npz that cannot be used (damaged, from another model, wrong values)."""


@dataclass(frozen=True)
class PhotoIndex:
    """EMBEDDINGS [N, D] (unit rows), LABELS [N] (index into NAMES: the model's class names, then any gallery
    landmarks), COLLECTIONS [N] (where each photo comes from: provenance source_set, or 'gallery')."""

    embeddings: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    collections: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.embeddings)
        if self.embeddings.ndim != 2 or len(self.labels) != n or len(self.collections) != n:
            raise PhotoIndexError("the photo index's embeddings, labels and collections differ in length.")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def rows_of(self, name: str) -> np.ndarray:
        """The rows whose label is NAME (empty when the index has none)."""
        if name not in self.names:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.labels == self.names.index(name))

    def save(self, folder: str | Path) -> Path:
        """FOLDER/index.npz, written atomically."""
        from .. import atomic

        path = Path(folder) / INDEX_FILE
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                embeddings=self.embeddings.astype(np.float16),
                labels=self.labels.astype(np.int32),
                names=np.asarray(self.names, dtype=str),
                collections=np.asarray(self.collections, dtype=str),
            )
        return path


def load(folder: str | Path, class_names: list[str], dim: int) -> PhotoIndex:
    """FOLDER/index.npz for a model with CLASS_NAMES and embeddings of size DIM; PhotoIndexError in one sentence when it
    does not fit (its sha256 is checked with the export's other files before this)."""
    path = Path(folder) / INDEX_FILE
    fix = "export the model again to rebuild it"
    try:
        with np.load(path, allow_pickle=False) as data:
            embeddings, labels = data["embeddings"], data["labels"]
            names, collections = tuple(str(n) for n in data["names"]), data["collections"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise PhotoIndexError(f"{path} is damaged ({type(error).__name__}); {fix}.") from None
    if embeddings.ndim != 2 or embeddings.shape[1] != dim or embeddings.dtype != np.float16:
        raise PhotoIndexError(
            f"{path} holds {embeddings.dtype} vectors of shape {embeddings.shape}, not [N, {dim}] float16 as the model's embedding; {fix}."
        )
    if list(names) != list(class_names):
        raise PhotoIndexError(f"{path} was built for other classes than the model's labels.json; {fix}.")
    norms = np.linalg.norm(embeddings.astype(np.float32), axis=1)
    if not np.all(np.isfinite(norms)) or np.abs(norms - 1).max(initial=0) > NORM_TOLERANCE:
        raise PhotoIndexError(f"{path} holds vectors that are not unit length (or not finite); {fix}.")
    if (
        labels.ndim != 1
        or len(labels) != len(embeddings)
        or labels.min(initial=0) < 0
        or labels.max(initial=0) >= len(names)
    ):
        raise PhotoIndexError(f"{path} holds labels outside the model's classes; {fix}.")
    if len(collections) != len(embeddings):
        raise PhotoIndexError(f"{path} holds {len(collections)} collections for {len(embeddings)} photos; {fix}.")
    return PhotoIndex(embeddings, labels.astype(np.int32), names, collections)


def open_recorded(folder: str | Path, info: ExportInfo, class_names: list[str], dim: int) -> PhotoIndex | None:
    """The index export.json (INFO) records for FOLDER, its sha256 checked; None for an export without one."""
    if not info.serving.index:
        return None
    if not info.serving.sha256(INDEX_FILE):
        raise PhotoIndexError(
            f"{Path(folder) / EXPORT_FILE} records a photo index but not its sha256; export the model again."
        )
    issue = problem(folder, INDEX_FILE, info.serving.files)
    if issue:
        raise PhotoIndexError(issue)
    return load(folder, class_names, dim)
