"""Model factory: 'scratch' (LandmarkNet) or 'timm:<name>' (a pretrained timm backbone with a new head)."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..preprocess import PreprocessConfig
from .scratch import LandmarkNet


class ModelNameError(ValueError):
    """A --model value that names no model we can build."""


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model: its name and constructor options."""

    name: str
    options: dict = field(default_factory=dict)


def create_model(
    spec: ModelSpec, num_classes: int, pretrained: bool = False, pretrained_file: str | None = None
) -> tuple[nn.Module, PreprocessConfig | None, str]:
    """Build the model; returns (model, preprocessing the backbone was pretrained with or None, weights source)."""
    if spec.name == "scratch":
        allowed = {"width", "depth", "dropout"}
        return LandmarkNet(num_classes, **{k: v for k, v in spec.options.items() if k in allowed}), None, "random"
    if spec.name.startswith("timm:"):
        from .timm_backbone import create_timm_model

        model, data_config, source = create_timm_model(
            spec.name[len("timm:") :],
            num_classes,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            drop_rate=float(spec.options.get("dropout", 0.2)),
        )
        _, height, _ = data_config["input_size"]
        pre = PreprocessConfig(
            input_size=int(spec.options.get("input_size") or height),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            mean=tuple(data_config["mean"]),
            std=tuple(data_config["std"]),
            interpolation=str(data_config.get("interpolation", "bilinear")),
        )
        return model, pre, source
    raise ModelNameError(f"Unknown model '{spec.name}'; use --model scratch or --model timm:<timm model name> (e.g. timm:tf_efficientnet_lite0).")
