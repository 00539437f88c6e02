"""A retrieval embedding for a timm backbone, the recipe of the Google Landmark Recognition winners scaled down:
generalised-mean (GeM) pooling, then a linear projection with batch norm to EMBEDDING_DIM; the classifier reads the
projection. Trained with a sub-center ArcFace margin loss beside cross-entropy (train/objective.py), the projection
places photos of one landmark close together and everything else far away, so nearest-neighbour similarity to the
training photos (landmark_lib/index/) can tell a landmark from a look-alike.

The neck replaces the backbone's `global_pool`, so forward_head(pre_logits=True) returns the projection the
classifier reads. The export's `embedding` (the index, the gallery) is the neck's GeM pooling before the projection
(embedding.py says why).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import LandmarkError


class GeM(nn.Module):
    """Generalised-mean pooling over H and W with a learned exponent p (p = 1: average pooling; large p: max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class RetrievalNeck(nn.Module):
    """[N, C, H, W] feature map -> [N, EMBEDDING_DIM]: GeM, linear projection (no bias), batch norm."""

    is_retrieval_neck = True  # what embedding.py looks for (a core module cannot import this one)

    def __init__(self, in_features: int, embedding_dim: int):
        super().__init__()
        self.pool = GeM()
        self.projection = nn.Linear(in_features, embedding_dim, bias=False)
        self.norm = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.projection(self.pool(x)))


def add_retrieval_neck(network: nn.Module, embedding_dim: int, num_classes: int) -> nn.Module:
    """NETWORK (a timm model with global_pool and a linear classifier) with the neck as its pooling and a new
    classifier over the embedding; the backbone's weights are untouched."""
    if not all(isinstance(getattr(network, name, None), nn.Module) for name in ("global_pool", "classifier")):
        raise LandmarkError(
            f"--embedding-dim needs a backbone with `global_pool` and `classifier` layers (EfficientNet, MobileNet); "
            f"{type(network).__name__} has other ones: train it without --embedding-dim."
        )
    network.global_pool = RetrievalNeck(int(getattr(network, "num_features")), embedding_dim)  # noqa: B009 - timm's width
    network.classifier = nn.Linear(embedding_dim, num_classes)
    return network


def has_retrieval_neck(network: nn.Module) -> bool:
    """Whether NETWORK's pooling is our neck (timm's own Hub format cannot rebuild such a network)."""
    return isinstance(getattr(network, "global_pool", None), RetrievalNeck)
