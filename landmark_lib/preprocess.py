"""The one eval-time preprocessing (resize, centre crop, normalise), used by evaluation, export and the app.

A PreprocessConfig (preprocess_config.py, torch-free so a server can read it without torch) flows like timm's data
config: the model factory makes it (from the backbone's pretraining, or from the training photos for the scratch
CNN), the run folder stores it, the transforms and the exported files use it. The Preprocess module below is the one
definition of the pixels a model sees: model.pt scripts it, preprocess.onnx is exported from it and model.pt2 runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from .preprocess_config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess", "PreprocessConfig"]


@torch.jit.unused
def _symbolic_min(a: int, b: int) -> int:
    """min() that torch.export keeps symbolic (the builtin would fix the graph to the example photo's shape)."""
    return cast(int, torch.sym_min(a, b))  # a SymInt under torch.export: an int whose value is not fixed yet


class Preprocess(nn.Module):
    """uint8 RGB image [3, H, W] of any size -> normalised float batch [1, 3, S, S]. TorchScript-compatible."""

    if TYPE_CHECKING:  # for mypy only: TorchScript resolves class annotations itself and cannot resolve these
        mean: torch.Tensor  # buffers, [1, 3, 1, 1] on the 0..255 scale
        std: torch.Tensor

    def __init__(self, config: PreprocessConfig):
        super().__init__()
        self.input_size = int(config.input_size)
        self.resize_size = int(config.resize_size)
        # torch's interpolate knows bilinear/bicubic; timm's 'bicubic'/'bilinear' map directly, others to bilinear.
        self.mode = config.interpolation if config.interpolation in ("bilinear", "bicubic") else "bilinear"
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError("expected an RGB image tensor of shape [3, H, W]")
        x = image.unsqueeze(0).to(torch.float32)
        height, width = x.shape[-2], x.shape[-1]
        # Integer arithmetic on the shape (round half up) and no shape-dependent branch, so that torch.export keeps
        # the sizes symbolic and the ONNX graph exported from this module resizes photos of any size like model.pt.
        short = min(height, width) if torch.jit.is_scripting() else _symbolic_min(height, width)
        new_h = (height * self.resize_size + short // 2) // short  # >= resize_size >= input_size (crop_pct <= 1)
        new_w = (width * self.resize_size + short // 2) // short
        x = F.interpolate(x, size=[new_h, new_w], mode=self.mode, align_corners=False, antialias=True)
        top = (new_h - self.input_size) // 2
        left = (new_w - self.input_size) // 2
        x = x[:, :, top : top + self.input_size, left : left + self.input_size].clamp(0.0, 255.0)
        return (x - self.mean) / self.std
