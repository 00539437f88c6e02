"""config.json + model.safetensors in timm's own Hub format, for runs of a timm backbone, so that
`timm.create_model("hf-hub:OWNER/NAME", pretrained=True)` (or "local-dir:EXPORT") rebuilds the fine-tuned network
with its head, label names and preprocessing. Written by timm itself (save_for_hf)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .. import bundle
from ..labels import ClassInfo
from ..network_layout import timm_layout
from ..preprocess import PreprocessConfig


def write_timm_files(network: nn.Module, classes: list[ClassInfo], preprocess: PreprocessConfig, out: Path) -> dict:
    """OUT/config.json and OUT/model.safetensors for NETWORK (a timm model); what export.json records."""
    from timm.models import save_for_hf

    size = preprocess.input_size
    save_for_hf(
        network,
        str(out),
        model_config={
            "label_names": [c.name for c in classes],
            "label_descriptions": {c.name: c.display_name for c in classes},
        },
        data_config={
            "input_size": (3, size, size),
            "crop_pct": preprocess.crop_pct,
            "mean": tuple(preprocess.mean),
            "std": tuple(preprocess.std),
            "interpolation": preprocess.interpolation,
        },
        safe_serialization=True,
    )
    return {
        "files": [bundle.TIMM_CONFIG_FILE, bundle.TIMM_WEIGHTS_FILE],
        "architecture": timm_layout(network).pretrained_cfg.get("architecture"),
        "load": 'timm.create_model("hf-hub:OWNER/NAME", pretrained=True): logits over label_names (no softmax)',
    }
