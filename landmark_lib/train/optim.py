"""Optimizer (timm's factory: AdamW/SGD, layer-wise LR decay, no decay on norms/biases) and cosine-with-warmup."""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from torch import nn


def build_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float, layer_decay: float | None = None
) -> torch.optim.Optimizer:
    """Only parameters with requires_grad are optimised, so frozen layers stay frozen.

    With LAYER_DECAY, timm groups the parameters by depth and records each group's 'lr_scale', which only timm's own
    schedulers apply; we use a torch LambdaLR, so the scale goes into each group's base lr here.
    """
    kwargs: dict[str, Any] = {"momentum": 0.9} if name == "sgd" else {}  # timm's "sgd" is Nesterov SGD
    optimizer = create_optimizer_v2(
        model, opt=name, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, **kwargs
    )
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return optimizer


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.01):
    """Linear warmup to the base LR, then cosine decay to min_ratio * base LR (per optimizer step)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
