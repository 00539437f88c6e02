"""A timm backbone with a fresh head for our landmark classes, plus the preprocessing it was pretrained with."""

from __future__ import annotations

import difflib
import re

from torch import nn

from ..errors import LandmarkError
from .pretrained import PretrainedWeightsError, create_pretrained

__all__ = ["UnknownModelError", "PretrainedWeightsError", "create_timm_model", "close_model_names"]


class UnknownModelError(LandmarkError, ValueError):
    """A model name timm does not know (the message lists close matches)."""


def close_model_names(name: str, limit: int = 8) -> list[str]:
    """timm names resembling `name`: wildcard matches on its parts (digits dropped), then difflib neighbours.

    'tf_efficientnet_lite9' -> tf_efficientnet_lite0..4; 'efficientnet_lite5' -> efficientnet_lite0..4, ...
    """
    import timm

    arch = name.split(".", 1)[0].lower()
    stem = re.sub(r"\d+$", "", arch).rstrip("_-")
    found: list[str] = []
    for pattern in (f"{stem}*", f"*{stem}*"):
        found += [m for m in timm.list_models(pattern) if m not in found] if len(stem) >= 3 else []
    found = sorted(found, key=lambda m: -difflib.SequenceMatcher(None, arch, m).ratio())
    found += [m for m in difflib.get_close_matches(arch, timm.list_models(), n=limit, cutoff=0.6) if m not in found]
    return found[:limit]


def create_timm_model(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    pretrained_file: str | None = None,
    drop_rate: float = 0.2,
) -> tuple[nn.Module, dict, str]:
    """(model with a `num_classes` head, timm data config, weights source: 'random' or where the weights came from).

    pretrained_file implies pretrained. Raises UnknownModelError for names timm does not know and
    PretrainedWeightsError when weights were asked for but cannot be loaded (never falls back to random).
    """
    import timm
    from timm.data import resolve_model_data_config

    if not timm.is_model(name):
        suggestions = close_model_names(name)
        hint = f" Close matches: {', '.join(suggestions)}." if suggestions else " See timm.list_models()."
        raise UnknownModelError(f"timm has no model named '{name}'.{hint}")
    if pretrained or pretrained_file is not None:
        model, source = create_pretrained(name, num_classes, pretrained_file=pretrained_file, drop_rate=drop_rate)
    else:
        model, source = (
            timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate),
            "random",
        )
    return model, resolve_model_data_config(model), source
