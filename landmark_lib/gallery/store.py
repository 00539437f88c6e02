"""A gallery folder: gallery.json (the model that made it, each landmark's place and each photo's source and sha256)
and embeddings-<id>.npy (one L2-normalised row per photo, in gallery.json's order).

gallery.json is the commit point: a change writes a new embeddings file, then replaces gallery.json atomically, then
deletes the old embeddings file, so a kill at any moment leaves the previous gallery or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeGuard

import numpy as np

from .. import atomic
from ..errors import LandmarkError
from ..labels import ClassInfo, entry_problem

GALLERY_FILE = "gallery.json"
FORMAT_VERSION = 1
DEFAULT_SIMILARITY = 0.63  # cosine a photo must reach to be recognised as a gallery landmark (reports/gallery.md, n=10)
DEFAULT_SOFTNESS = (
    0.05  # how fast a gallery landmark's score falls below the rule (gallery/ranking.py; reports/gallery.md)
)


class GalleryError(LandmarkError, ValueError):
    """A gallery folder that cannot be used as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class GalleryModel:
    """Which export a gallery's embeddings come from: another model's embeddings are not comparable."""

    sha256: str  # export.json's sha256 of model.pt (the weights every backend of the export shares)
    dim: int

    def check(self, other: GalleryModel, folder: Path) -> None:
        if self != other:
            raise GalleryError(
                f"{folder} was made with another model (model.pt sha256 {self.sha256[:12]}..., {self.dim}-d embeddings; "
                f"this one is {other.sha256[:12]}..., {other.dim}-d); serve the model that made it, or build a new "
                "gallery with `landmark gallery add`."
            )


@dataclass
class Landmark:
    """One taught landmark: its place (like a model class) and the photos it was taught from."""

    info: ClassInfo
    photos: list[dict] = field(default_factory=list)  # {"source": path or upload name, "sha256": hex}


@dataclass
class Gallery:
    folder: Path
    model: GalleryModel
    similarity: float = DEFAULT_SIMILARITY
    softness: float = DEFAULT_SOFTNESS
    landmarks: list[Landmark] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @property
    def names(self) -> list[str]:
        return [lm.info.name for lm in self.landmarks]

    @property
    def row_landmarks(self) -> np.ndarray:
        """The landmark index of every embedding row."""
        return np.repeat(np.arange(len(self.landmarks)), [len(lm.photos) for lm in self.landmarks]).astype(np.int64)

    def add(self, info: ClassInfo, photos: list[dict], embeddings: np.ndarray, replace: bool = False) -> None:
        """Teach INFO from PHOTOS (their EMBEDDINGS rows); a name already taught is an error unless REPLACE."""
        if info.name in self.names:
            if not replace:
                raise GalleryError(
                    f"{self.folder} already has '{info.name}'; pass --replace to teach it again, or pick another --name."
                )
            self.remove(info.name)
        if len(photos) != len(embeddings) or not len(photos):
            raise GalleryError(f"'{info.name}' needs at least one photo; pass photo files or folders of photos.")
        self.landmarks.append(Landmark(info, list(photos)))
        rows = np.asarray(embeddings, np.float32)
        self.embeddings = rows if not self.embeddings.size else np.concatenate([self.embeddings, rows])

    def remove(self, name: str) -> None:
        if name not in self.names:
            raise GalleryError(
                f"{self.folder} has no landmark '{name}'; `landmark gallery list {self.folder}` shows them."
            )
        index = self.names.index(name)
        self.embeddings = self.embeddings[self.row_landmarks != index]
        del self.landmarks[index]


def check_similarity(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise GalleryError(f"--similarity must be a cosine between 0 and 1 (e.g. {DEFAULT_SIMILARITY}), got {value}.")
    return float(value)


def new_gallery(folder: str | Path, model: GalleryModel) -> Gallery:
    return Gallery(Path(folder), model, embeddings=np.zeros((0, model.dim), np.float32))


def load(folder: str | Path, model: GalleryModel | None = None) -> Gallery:
    """The gallery in FOLDER, every value checked (a wrong one gives silently wrong answers or a 500 later), and
    checked against MODEL (the served export) when given."""
    folder = Path(folder)
    path = folder / GALLERY_FILE
    if not path.is_file():
        raise GalleryError(
            f"{folder} is not a gallery (no {GALLERY_FILE}); make one with `landmark gallery add {folder} --name NAME PHOTOS...`."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GalleryError(f"{path} cannot be read ({error}); rebuild the gallery.") from None
    problem = _record_problem(data)
    if problem:
        raise GalleryError(f"{path} {problem}; fix it or rebuild the gallery.")
    if data.get("format", 1) > FORMAT_VERSION:
        raise GalleryError(f"{path} has format {data['format']}, newer than this code reads; update landmark-tagger.")
    landmarks = [Landmark(ClassInfo.from_dict(lm["info"]), lm["photos"]) for lm in data["landmarks"]]
    gallery = Gallery(
        folder,
        GalleryModel(data["model"]["sha256"], data["model"]["dim"]),
        float(data["similarity"]),
        float(data.get("softness", DEFAULT_SOFTNESS)),
        landmarks,
        _embeddings(folder, data["embeddings"], data["model"]["dim"])
        if landmarks
        else np.zeros((0, data["model"]["dim"]), np.float32),
    )
    if gallery.embeddings.shape != (len(gallery.row_landmarks), gallery.model.dim):
        raise GalleryError(
            f"{folder}'s embeddings do not match {GALLERY_FILE} (a copy mixed two galleries); rebuild it."
        )
    if model is not None:
        gallery.model.check(model, folder)
    return gallery


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(data: object) -> str | None:
    """Why DATA (gallery.json) is not a gallery record, as the middle of a sentence, or None."""
    if not isinstance(data, dict):
        return f"is not a gallery record (a JSON object), it holds {type(data).__name__}"
    if not isinstance(data.get("format", 1), int):
        return f'has a "format" that is not a whole number ({data["format"]!r:.20})'
    model = data.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("sha256"), str) and isinstance(model.get("dim"), int)):
        return 'has no "model" {sha256: text, dim: whole number}'
    if model["dim"] < 1:
        return f"records {model['dim']}-d embeddings"
    similarity, softness = data.get("similarity"), data.get("softness", DEFAULT_SOFTNESS)
    if not (_number(similarity) and 0 < similarity < 1):
        return f'has a "similarity" of {similarity!r:.20}, not a cosine between 0 and 1 (exclusive)'
    if not (_number(softness) and 0 < softness <= 1):
        return f'has a "softness" of {softness!r:.20}, not a number in (0, 1]'
    landmarks = data.get("landmarks")
    if not isinstance(landmarks, list):
        return f'has "landmarks" that are not a list ({landmarks!r:.20})'
    names = set()
    for landmark in landmarks:
        if not (isinstance(landmark, dict) and isinstance(landmark.get("photos"), list)):
            return f"has a landmark that is not {{info, photos: [...]}} ({landmark!r:.40})"
        problem = entry_problem(landmark.get("info"))
        if problem:
            return f"has a landmark whose {problem}"
        if not landmark["photos"] or not all(isinstance(photo, dict) for photo in landmark["photos"]):
            return f"has landmark {landmark['info']['name']!r} without a list of photo records"
        if landmark["info"]["name"] in names:
            return f"lists landmark {landmark['info']['name']!r} twice"
        names.add(landmark["info"]["name"])
    embeddings = data.get("embeddings")
    if landmarks and not (isinstance(embeddings, str) and re.fullmatch(r"embeddings-[0-9a-f]+\.npy", embeddings)):
        return f"names its embeddings {embeddings!r:.40}, not a file embeddings-<hex>.npy in the gallery folder"
    return None


def _embeddings(folder: Path, name: str, dim: int) -> np.ndarray:
    """FOLDER/NAME: a regular file of the folder itself holding L2-normalised finite float rows of DIM values."""
    path = folder / name
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        regular = False
    if not regular:
        raise GalleryError(f"{path} is not a regular file (missing, a link, folder or pipe); rebuild the gallery.")
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise GalleryError(
            f"{path} cannot be read as a .npy array ({type(error).__name__}); rebuild the gallery."
        ) from None
    if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.dtype.kind != "f" or rows.shape[1] != dim:
        raise GalleryError(f"{path} does not hold one row of {dim} floats per photo; rebuild the gallery.")
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    if not np.all(np.isfinite(rows)) or not np.allclose(norms, 1.0, atol=1e-3):
        raise GalleryError(
            f"{path} holds embeddings that are not finite unit vectors (NaN, inf or zero rows); rebuild the gallery."
        )
    return rows.astype(np.float32, copy=False)


def save(gallery: Gallery) -> None:
    """Write GALLERY atomically (see the module docstring)."""
    folder = gallery.folder
    folder.mkdir(parents=True, exist_ok=True)
    old = (
        json.loads((folder / GALLERY_FILE).read_text(encoding="utf-8")).get("embeddings")
        if (folder / GALLERY_FILE).is_file()
        else None
    )
    name = f"embeddings-{secrets.token_hex(6)}.npy"
    with atomic.atomic_path(folder / name) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(gallery.embeddings, np.float32))
    data = {
        "format": FORMAT_VERSION,
        "model": asdict(gallery.model),
        "similarity": gallery.similarity,
        "softness": gallery.softness,
        "embeddings": name,
        "landmarks": [{"info": lm.info.to_dict(), "photos": lm.photos} for lm in gallery.landmarks],
    }
    atomic.write_text(folder / GALLERY_FILE, json.dumps(data, indent=2, ensure_ascii=False))
    if old and old != name:
        (folder / old).unlink(missing_ok=True)
