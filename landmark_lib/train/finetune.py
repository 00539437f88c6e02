"""Fine-tuning strategies for timm backbones: which layers train and what BatchNorm does in the frozen ones."""

from __future__ import annotations

from torch import nn

from ..artifacts.train_config import STRATEGIES
from ..errors import LandmarkError
from ..network_layout import timm_layout


class StrategyError(LandmarkError, ValueError):
    """A fine-tuning option that does not fit the backbone or the other options."""


def trainable_groups(model: nn.Module, strategy: str, train_stages: int) -> int:
    """Freeze parameters by strategy; return the index of the first trainable timm coarse group.

    Groups follow timm's group_matcher(coarse=True) (EfficientNet: stem, 7 block stages with the head conv
    folded into the last, classifier). 'linear' trains the classifier only, 'partial' the last `train_stages`
    groups plus the classifier, 'full' everything.
    """
    from timm.models import group_parameters  # here, so that listing the strategies (the CLI) does not import timm

    groups = group_parameters(model, timm_layout(model).group_matcher(coarse=True))
    order = sorted(groups)
    if strategy == "full":
        first = order[0]
    elif strategy == "linear":
        first = order[-1]
    elif strategy == "partial":
        if not 1 <= train_stages < len(order) - 1:
            raise StrategyError(
                f"--train-stages must be between 1 and {len(order) - 2} for this backbone, got {train_stages}."
            )
        first = order[-1 - train_stages]
    else:
        raise StrategyError(f"Unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}.")
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
