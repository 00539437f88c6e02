"""The one eval-time preprocessing (resize, centre crop, normalise), used by evaluation, export and the app.

A PreprocessConfig flows like timm's data config: the model factory makes it (from the backbone's pretraining, or
from the training photos for the scratch CNN), the run folder stores it, the transforms and the exported files use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PreprocessConfig:
    """What a model expects: crop size, the shorter side to resize to before the crop, normalisation."""

    input_size: int = 128
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_timm(cls, data_config: dict, input_size: int | None = None) -> PreprocessConfig:
        """The preprocessing a timm backbone was pretrained with (timm's resolve_model_data_config), at INPUT_SIZE."""
        _, height, _ = data_config["input_size"]
        return cls(
            input_size=int(input_size or height),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            mean=tuple(data_config["mean"]),
            std=tuple(data_config["std"]),
            interpolation=str(data_config.get("interpolation", "bilinear")),
        )

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(
            input_size=int(data["input_size"]),
            crop_pct=float(data["crop_pct"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=str(data["interpolation"]),
        )


class Preprocess(nn.Module):
    """uint8 RGB image [3, H, W] of any size -> normalised float batch [1, 3, S, S]. TorchScript-compatible."""

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
        scale = float(self.resize_size) / float(min(height, width))
        new_h = max(self.input_size, int(round(height * scale)))
        new_w = max(self.input_size, int(round(width * scale)))
        if new_h != height or new_w != width:
            x = F.interpolate(x, size=[new_h, new_w], mode=self.mode, align_corners=False, antialias=True)
        top = (new_h - self.input_size) // 2
        left = (new_w - self.input_size) // 2
        x = x[:, :, top : top + self.input_size, left : left + self.input_size].clamp(0.0, 255.0)
        return (x - self.mean) / self.std
