"""Fine-tuning strategies for timm backbones: which layers train, what BatchNorm does, and the frozen/trainable split
that lets CPU users cache the frozen part's outputs once instead of recomputing them every epoch."""
from __future__ import annotations

import torch
from timm.models import group_parameters
from torch import nn

STRATEGIES = ("full", "partial", "linear")
FEATURE_CACHE_FILE = "feature_cache.json"  # run folder: how long the one-time frozen-layer pass took


def trainable_groups(model: nn.Module, strategy: str, train_stages: int) -> int:
    """Freeze parameters by strategy; return the index of the first trainable timm coarse group.

    Groups follow timm's group_matcher(coarse=True) (EfficientNet: stem, 7 block stages with the head conv
    folded into the last, classifier). 'linear' trains the classifier only, 'partial' the last `train_stages`
    groups plus the classifier, 'full' everything.
    """
    groups = group_parameters(model, model.group_matcher(coarse=True))
    order = sorted(groups)
    if strategy == "full":
        first = order[0]
    elif strategy == "linear":
        first = order[-1]
    elif strategy == "partial":
        if not 1 <= train_stages < len(order) - 1:
            raise ValueError(f"--train-stages must be between 1 and {len(order) - 2} for this backbone, got {train_stages}.")
        first = order[-1 - train_stages]
    else:
        raise ValueError(f"Unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}.")
    trainable = {name for gid in order if gid >= first for name in groups[gid]}
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    return order.index(first)


def set_frozen_bn_eval(model: nn.Module, freeze_all_bn: bool = False) -> None:
    """BatchNorm in frozen layers always uses its pretrained running statistics (eval mode); with freeze_all_bn the
    trainable layers' BatchNorm does too (better for small batches)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = not any(p.requires_grad for p in module.parameters())
            if frozen or freeze_all_bn:
                module.eval()


class FrozenPart(nn.Module):
    """The layers before the first trainable one (run once per augmented view when features are cached)."""

    def __init__(self, model: nn.Module, first_block: int, linear: bool):
        super().__init__()
        self.model, self.first_block, self.linear = model, first_block, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.linear:
            return m.forward_head(m.forward_features(x), pre_logits=True)
        x = m.bn1(m.conv_stem(x))
        for block in m.blocks[: self.first_block]:
            x = block(x)
        return x


class TrainablePart(nn.Module):
    """The layers from the first trainable one to the logits; shares its parameters with the full model."""

    def __init__(self, model: nn.Module, first_block: int, linear: bool):
        super().__init__()
        self.model, self.first_block, self.linear = model, first_block, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.linear:
            return m.get_classifier()(x)
        for block in m.blocks[self.first_block :]:
            x = block(x)
        return m.forward_head(m.bn2(m.conv_head(x)))


def split_for_feature_cache(model: nn.Module, strategy: str, first_group: int) -> tuple[FrozenPart, TrainablePart]:
    """Split a frozen-prefix model into (frozen, trainable) parts whose composition equals model(x).

    Linear probes work for any timm model; partial fine-tuning needs the EfficientNet/MobileNet layout
    (conv_stem, bn1, blocks, conv_head, bn2), where coarse group g >= 1 is block stage g - 1.
    """
    linear = strategy == "linear"
    if not linear:
        if strategy != "partial" or not all(hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
            raise ValueError("Feature caching needs --strategy linear, or --strategy partial on an EfficientNet/MobileNet-style backbone; use --feature-cache off.")
        first_block = first_group - 1
    else:
        first_block = len(model.blocks) if hasattr(model, "blocks") else 0
    return FrozenPart(model, first_block, linear), TrainablePart(model, first_block, linear)
