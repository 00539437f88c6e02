"""The retrieval embedding: the network's pooled features (the classifier's input), L2-normalised.

A gallery (landmark_lib/gallery/) compares photos by these vectors, so a landmark the classifier never learned can
be taught from a few photos. The same pass gives logits and embedding: serving with a gallery costs no second call.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .network_layout import timm_layout


def classifier_layer(network: nn.Module) -> nn.Module:
    """The last linear layer: timm's get_classifier(), or the scratch CNN's head[-1]."""
    if hasattr(network, "get_classifier"):
        return timm_layout(network).get_classifier()
    return cast(nn.Sequential, network.head)[-1]


def pooled_features(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[N, D] pooled features of a normalised batch: what the classifier sees (after pooling, before the linear)."""
    if hasattr(network, "forward_head"):
        timm_network = timm_layout(network)
        return timm_network.forward_head(timm_network.forward_features(x), pre_logits=True)
    head, stages, stem = (cast(nn.Sequential, getattr(network, name)) for name in ("head", "stages", "stem"))
    return head[:-1](stages(stem(x)))


class WithEmbedding(nn.Module):
    """NETWORK (shares its parameters) with a second output: batch -> (logits [N, C], embedding [N, D])."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = pooled_features(self.network, x)
        return classifier_layer(self.network)(features), l2_normalise(features.float())


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """Rows of X scaled to unit length (broadcast, not F.normalize's expand_as: ONNX Runtime's int8 pre-processing
    cannot infer that graph's shapes)."""
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True).clamp_min(1e-12))


def embedding_dim(network: nn.Module) -> int:
    """D: the classifier's input width."""
    return int(cast(nn.Linear, classifier_layer(network)).in_features)
