"""Embedding photos with the served model for a gallery: which model that is (ModelId), the photo files a user named,
and their embeddings and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .. import bundle, checksums
from ..data.folder import IMAGE_EXTENSIONS
from ..data.images import ImageLoadError, pil_to_uint8_chw
from .store import GalleryError, ModelId

BATCH = 16


def model_id(service) -> ModelId:
    """The served export's identity: model.pt's sha256 as export.json records it (else the file's own), and D."""
    path = Path(service.model_path)
    recorded = (bundle.read_info(path.parent).get(checksums.FILES_KEY) or {}).get(path.name, {}).get("sha256")
    size = int(service.model.preprocess.input_size)
    with torch.inference_mode():
        dim = service.model.forward_batch_with_embedding([torch.zeros(3, size, size, dtype=torch.uint8)])[1].shape[1]
    return ModelId(recorded or checksums.sha256_file(path), int(dim))


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


def run_model(model, images: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C], embeddings [N, D]) of decoded uint8 images, BATCH at a time."""
    probs, rows = [], []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            p, e = model.forward_batch_with_embedding(images[start : start + BATCH])
            probs.append(p.numpy())
            rows.append(e.numpy())
    return np.concatenate(probs), np.concatenate(rows).astype(np.float32)


def decode(service, path: Path) -> torch.Tensor:
    """PATH as the service feeds it to the model; a file that is not a usable photo is an error naming it."""
    from ..serve.photos import read_photo

    try:
        return pil_to_uint8_chw(read_photo(path, path.name, service.max_short_side).image)
    except ImageLoadError as error:
        raise GalleryError(f"{path} is not a usable photo ({error}); remove it from the list.") from None


def embed_files(service, files: list[Path]) -> tuple[list[dict], np.ndarray]:
    """({source, sha256} per photo, their embeddings)."""
    images = [decode(service, path) for path in files]
    photos = [{"source": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files]
    return photos, run_model(service.model, images)[1]
