"""The parts of a timm network this package calls by name, typed.

nn.Module's __getattr__ types every attribute as `Tensor | Module`, which is true of none of these; `timm_layout`
states which layout the caller relies on (feature caching, fine-tuning groups, weight conversion, the Hub files).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import nn


class TimmNetwork(Protocol):
    """What every timm classifier has (timm.models.*)."""

    pretrained_cfg: dict[str, Any]

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def get_classifier(self) -> nn.Module: ...

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]: ...


class EfficientNetLayout(TimmNetwork, Protocol):
    """timm's EfficientNet / MobileNet layout: stem, block stages, head conv (what partial feature caching splits)."""

    conv_stem: nn.Module
    bn1: nn.Module
    blocks: nn.Sequential
    conv_head: nn.Module
    bn2: nn.Module


def timm_layout(network: nn.Module) -> EfficientNetLayout:
    """NETWORK as the timm layout the caller relies on (checked by the caller, e.g. features.split_for_feature_cache)."""
    return cast(EfficientNetLayout, network)
