"""Training augmentation (timm's pipeline plus photo-degradation) and the tensor eval transform."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from timm.data import create_transform

from ..artifacts.train_config import TrainConfig
from ..preprocess import Preprocess, PreprocessConfig
from .images import pil_to_uint8_chw


@dataclass
class AugmentConfig:
    """Knobs for training augmentation; defaults suit tourist photos (no vertical flips, mild colour)."""

    scale_min: float = TrainConfig.scale_min  # the defaults of `landmark train` (one home: TrainConfig)
    hflip: float = TrainConfig.hflip
    color_jitter: float = TrainConfig.color_jitter
    auto_augment: str | None = TrainConfig.auto_augment
    random_erasing: float = TrainConfig.random_erasing
    degrade: float = TrainConfig.degrade  # probability of each camera degradation: low resolution, blur, JPEG artefacts


class PhotoDegradation:
    """Simulate other cameras and sources: downscale-upscale, Gaussian blur and JPEG re-encoding, each with prob p."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.p <= 0:
            return image
        if random.random() < self.p:
            factor = random.uniform(0.25, 0.7)
            small = image.resize(
                (max(8, int(image.width * factor)), max(8, int(image.height * factor))), Image.Resampling.BILINEAR
            )
            image = small.resize(image.size, Image.Resampling.BILINEAR)
        if random.random() < self.p:
            image = image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.3, 1.8)))
        if random.random() < self.p:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=random.randint(20, 75))
            buffer.seek(0)
            image = Image.open(buffer).convert("RGB")
        return image

    def __repr__(self) -> str:
        return f"PhotoDegradation(p={self.p})"


def train_transform(pre: PreprocessConfig, aug: AugmentConfig):
    """PIL image -> augmented, normalised float tensor [3, S, S]."""
    timm_transform = create_transform(
        input_size=pre.input_size,
        is_training=True,
        scale=(aug.scale_min, 1.0),
        hflip=aug.hflip,
        color_jitter=aug.color_jitter,
        auto_augment=aug.auto_augment or None,
        interpolation=pre.interpolation,
        mean=pre.mean,
        std=pre.std,
        re_prob=aug.random_erasing,
    )
    degrade = PhotoDegradation(aug.degrade)
    return lambda image: timm_transform(degrade(image))


class EvalTransform:
    """PIL image -> the exact tensor the exported model computes internally (via Preprocess)."""

    def __init__(self, pre: PreprocessConfig):
        self.preprocess = Preprocess(pre)

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.preprocess(pil_to_uint8_chw(image))[0]
