"""LandmarkPredictor: preprocessing + network + softmax + class metadata in one module, the unit we export."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from .embedding import WithEmbedding
from .labels import ClassInfo, to_columns
from .preprocess import Preprocess, PreprocessConfig


class LandmarkPredictor(nn.Module):
    """uint8 RGB image [3, H, W] of any size -> class probabilities [num_classes] (the main contract).

    Also what torchvision-based code passes: a float batch [N, 3, H, W] in 0..1 (ToTensor()(photo).unsqueeze(0))
    -> probabilities [N, num_classes].

    The class names, display names and places are attributes, so a TorchScript file of this module
    is all a server needs.
    """

    def __init__(self, model: nn.Module, preprocess: PreprocessConfig, classes: list[ClassInfo]):
        super().__init__()
        self.preprocess = Preprocess(preprocess)
        self.model = model
        self.with_embedding = WithEmbedding(model)  # the same weights, with the pooled features as a second output
        columns = to_columns(classes)  # TorchScript attributes: plain lists (labels.Columns)
        self.class_names: List[str] = columns.class_names
        self.display_names: List[str] = columns.display_names
        self.cities: List[str] = columns.cities
        self.countries: List[str] = columns.countries
        self.latitudes: List[float] = columns.latitudes
        self.longitudes: List[float] = columns.longitudes

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() == 4:  # a batch [N, 3, H, W]: torchvision's ToTensor()(photo).unsqueeze(0) -> [N, num_classes]
            return self.forward_batch(unit_range_batch_to_images(image))
        return torch.softmax(self.model(self.preprocess(image)).float(), dim=-1)[0]

    @torch.jit.export
    def forward_batch(self, images: List[torch.Tensor]) -> torch.Tensor:
        """Several photos at once -> probabilities [N, num_classes] (one network call: faster per photo)."""
        batch = torch.cat([self.preprocess(image) for image in images], dim=0)
        return torch.softmax(self.model(batch).float(), dim=-1)

    @torch.jit.export
    def forward_batch_with_embedding(self, images: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Several photos -> (probabilities [N, num_classes], L2-normalised embeddings [N, D]) in one network call:
        the gallery (landmark_lib/gallery/) compares photos by the embeddings."""
        batch = torch.cat([self.preprocess(image) for image in images], dim=0)
        logits, embedding = self.with_embedding(batch)
        return torch.softmax(logits.float(), dim=-1), embedding


def unit_range_batch_to_images(batch: torch.Tensor) -> List[torch.Tensor]:
    """[N, 3, H, W] -> N images on the uint8 scale: floats (torchvision's ToTensor) are 0..1, so they are scaled by 255."""
    scale = 255.0 if batch.is_floating_point() else 1.0
    return [image * scale for image in batch.unbind(0)]
