"""What training minimises: cross-entropy on the logits, plus (--metric-loss) a sub-center ArcFace margin loss on the
embedding, the classifier's input. The margin loss is what makes nearest-neighbour similarity meaningful for
retrieval (models/retrieval.py); cross-entropy keeps the classifier the served answer.

With a margin loss, what trains is `MetricTraining`: the network (or its trainable part) returning (logits,
embedding) in one forward call, so Accelerate's data-parallel wrapper sees one module, and the ArcFace class centers
train and checkpoint with it. Without one, the network trains alone (run folders and checkpoints as before).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..embedding import classifier_layer
from ..network_layout import timm_layout
from .features import TrainablePart

METRIC_LOSSES = ("none", "subcenter-arcface")
ARCFACE_MARGIN_DEGREES = 28.6  # 0.5 rad, as in the GLR 2020 solutions
ARCFACE_SCALE = 30.0  # 64 in the papers' 80k-class runs; a few dozen classes train more stably at 30
SUB_CENTERS = 3  # several modes per class: day/night, inside/outside, and the many faces of "no landmark"


class MetricTraining(nn.Module):
    """NET (a network, or the trainable part of one) -> (logits, embedding), with the margin loss's class centers."""

    def __init__(self, net: nn.Module, num_classes: int, dim: int):
        super().__init__()
        from pytorch_metric_learning.losses import SubCenterArcFaceLoss

        self.net = net
        self.margin_loss = SubCenterArcFaceLoss(
            num_classes=num_classes,
            embedding_size=dim,
            margin=ARCFACE_MARGIN_DEGREES,
            scale=ARCFACE_SCALE,
            sub_centers=SUB_CENTERS,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.net, TrainablePart):
            features = self.net.pre_logits(x)
            return timm_layout(self.net.model).get_classifier()(features), features
        model = timm_layout(self.net)
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        return model.get_classifier()(features), features


def with_metric_loss(net: nn.Module, model: nn.Module, num_classes: int, metric_loss: str) -> nn.Module:
    """What trains: NET itself, or NET wrapped with the margin loss on the classifier's input (MODEL: the whole network,
    for that input's width)."""
    if metric_loss == "none":
        return net
    return MetricTraining(net, num_classes, int(cast(nn.Linear, classifier_layer(model)).in_features))


def logits_of(output: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The logits of what the training module returned (validation only needs them)."""
    return output[0] if isinstance(output, tuple) else output


def loss(
    net: nn.Module,
    output: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    targets: torch.Tensor,
    label_smoothing: float,
    metric_weight: float,
) -> torch.Tensor:
    """Cross-entropy (+ METRIC_WEIGHT x the margin loss when NET is a MetricTraining)."""
    ce = F.cross_entropy(logits_of(output).float(), targets, label_smoothing=label_smoothing)
    if not isinstance(output, tuple):
        return ce
    wrapped = getattr(net, "module", net)  # prepared for data parallel: the wrapped module has the loss
    return ce + metric_weight * cast(MetricTraining, wrapped).margin_loss(output[1].float(), targets)
