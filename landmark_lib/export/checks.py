"""What every exported file is checked on: a few real photos and generated ones of awkward sizes, and how far its
probabilities may drift from the eager model's."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.folder import open_split
from ..data.images import ImageLoadError, load_rgb, pil_to_uint8_chw
from ..errors import LandmarkError
from ..predictor import LandmarkPredictor

TOLERANCE = 1e-4  # max |probability difference| to the eager model; more means the file does not reproduce it


class ExportError(LandmarkError, RuntimeError):
    """An exported file that does not reproduce the eager model, or an export that cannot be made; the message says
    by how much or why."""


def check_images(
    check_data: str | Path | None, split: str, class_names: list[str], count: int = 8, min_short_side: int | None = None
) -> list[torch.Tensor]:
    """Up to COUNT real photos (the first of classes spread over the list) plus generated ones of awkward sizes."""
    images = []
    if check_data:
        first: dict[int, Path] = {}
        for path, target in open_split(check_data, split, class_names=class_names).samples:
            first.setdefault(target, path)
        for path in list(first.values())[:: max(1, len(first) // count)]:
            try:
                images.append(pil_to_uint8_chw(load_rgb(path, min_short_side)))
            except ImageLoadError:
                continue
            if len(images) == count:
                break
    generator = torch.Generator().manual_seed(0)
    for height, width in [(37, 500), (1, 1), (480, 640), (333, 257)]:
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator))
    return images


def eager_probabilities(eager: torch.nn.Module, images: list[torch.Tensor]) -> torch.Tensor:
    """[len(images), num_classes]: the eager predictor on each photo on its own (the reference for every file)."""
    with torch.no_grad():
        return torch.stack([eager(image) for image in images])


def eager_embeddings(eager: LandmarkPredictor, images: list[torch.Tensor]) -> torch.Tensor:
    """[len(images), D]: the eager predictor's embedding of each photo on its own (the reference for every file)."""
    with torch.no_grad():
        return torch.cat([eager.forward_batch_with_embedding([image])[1] for image in images])
