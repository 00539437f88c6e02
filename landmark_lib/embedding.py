"""The retrieval embedding, L2-normalised: the network's pooled features. For a plain network that is the
classifier's input; with a retrieval neck (models/retrieval.py) it is the neck's GeM pooling of the backbone, before
the projection the classifier reads.

The photo index and a gallery (landmark_lib/index/, landmark_lib/gallery/) compare photos by these vectors. The
pooled features, not the neck's projection, because the projection, trained with a margin loss on our 66 landmarks,
folds a landmark it never learned onto the nearest known one: on 22 held-out landmarks, 10 photos each, the nearest
taught photo is right for 86.6% of test photos with the pooled features and 64.6% with the projection, and the
rejection scores are as good or better (reports/gallery.md, reports/real_world.md). The same pass gives logits and
embedding: serving with a gallery or index costs no second call.
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


def head_and_embedding(network: nn.Module, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C], embedding [N, D], not normalised) of a timm NETWORK's last FEATURE_MAP."""
    timm_network = timm_layout(network)
    head_input = timm_network.forward_head(feature_map, pre_logits=True)
    neck, embedding = getattr(network, "global_pool", None), head_input
    if getattr(neck, "is_retrieval_neck", False):  # its GeM pooling, before the projection
        embedding = cast(nn.Module, getattr(neck, "pool"))(feature_map)  # noqa: B009 - a submodule, typed for mypy
    return timm_network.get_classifier()(head_input), embedding


def logits_and_embedding(network: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C], embedding [N, D], not normalised) of a normalised batch X, in one pass."""
    if hasattr(network, "forward_head"):
        return head_and_embedding(network, timm_layout(network).forward_features(x))
    features = pooled_features(network, x)
    return classifier_layer(network)(features), features


class WithEmbedding(nn.Module):
    """NETWORK (shares its parameters) with a second output: batch -> (logits [N, C], embedding [N, D])."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = logits_and_embedding(self.network, x)
        return logits, l2_normalise(embedding.float())


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """Rows of X scaled to unit length (broadcast, not F.normalize's expand_as: ONNX Runtime's int8 pre-processing
    cannot infer that graph's shapes)."""
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True).clamp_min(1e-12))


def embedding_dim(network: nn.Module) -> int:
    """D: the embedding's width (the backbone's pooled features with a retrieval neck, else the classifier's input)."""
    neck = getattr(network, "global_pool", None)
    if getattr(neck, "is_retrieval_neck", False):
        return int(cast(nn.Linear, cast(nn.Module, neck).projection).in_features)
    return int(cast(nn.Linear, classifier_layer(network)).in_features)
