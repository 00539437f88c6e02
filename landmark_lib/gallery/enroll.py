"""Embedding photos with the served model for a gallery: which model that is (GalleryModel, the sha256 and embedding size a gallery is tied to), the photo files a user named,
and their embeddings and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.folder import IMAGE_EXTENSIONS
from ..data.images import ImageLoadError
from ..runtime.backends import probabilities_with_embedding
from ..runtime.photos import model_pixels, read_photo
from .store import GalleryError, GalleryModel

BATCH = 16


def embedding_model(served) -> GalleryModel:
    """What a gallery of SERVED's embeddings is tied to (SERVED: the service or a LoadedModel): model.pt's sha256
    and D, from the identity computed at load (D measured on a blank photo for exports that do not record it)."""
    identity = served.identity
    dim = identity.embedding_size
    if dim is None:
        size = int(served.model.preprocess.input_size)
        dim = probabilities_with_embedding(served.model, [np.zeros((3, size, size), np.uint8)])[1].shape[1]
    return GalleryModel(identity.model_sha256, int(dim))


def photo_files(sources: list[Path]) -> list[Path]:
    """The photos of SOURCES (files, and folders searched recursively), in a stable order; nothing found is an error."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif source.is_file():
            files.append(source)
        else:
            raise GalleryError(f"{source} does not exist; pass photo files or folders of photos.")
    if not files:
        raise GalleryError(
            f"no photos ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, sources))}; pass photo files or folders."
        )
    return files


def run_model(model, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C], embeddings [N, D]) of decoded uint8 images [3, H, W], BATCH at a time."""
    parts = [probabilities_with_embedding(model, images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
    return np.concatenate([p for p, _ in parts]), np.concatenate([e for _, e in parts]).astype(np.float32)


def decode(service, path: Path) -> np.ndarray:
    """PATH as the service feeds it to the model; a file that is not a usable photo is an error naming it."""
    try:
        return model_pixels(read_photo(path, path.name, service.max_short_side).image, service.max_short_side)
    except ImageLoadError as error:
        raise GalleryError(f"{path} is not a usable photo ({error}); remove it from the list.") from None


def embed_files(service, files: list[Path]) -> tuple[list[dict], np.ndarray]:
    """({source, sha256} per photo, their embeddings)."""
    images = [decode(service, path) for path in tqdm(files, desc="reading photos", unit="photo")]
    photos = [{"source": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files]
    return photos, run_model(service.model, images)[1]
