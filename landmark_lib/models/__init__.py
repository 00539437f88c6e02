"""Model factory: 'scratch' (LandmarkNet) or 'timm:<name>' (a pretrained timm backbone with a new head)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..artifacts.run_folder import ModelSpec
from ..errors import LandmarkError
from ..preprocess import PreprocessConfig
from .scratch import LandmarkNet


class ModelNameError(LandmarkError, ValueError):
    """A --model value that names no model we can build."""


@dataclass
class BuiltModel:
    """A new network, the preprocessing its weights expect (None for the scratch CNN: it is fitted to the training
    photos later) and where the initial weights came from ('random', 'package:...', 'file:...', 'timm:...')."""

    network: nn.Module
    preprocess: PreprocessConfig | None
    weights_source: str


def create_model(
    spec: ModelSpec, num_classes: int, pretrained: bool = False, pretrained_file: str | None = None
) -> BuiltModel:
    """The network for SPEC with NUM_CLASSES outputs; PRETRAINED loads ImageNet weights into a timm backbone."""
    if spec.name == "scratch":
        allowed = {"width", "depth", "dropout"}
        return BuiltModel(
            LandmarkNet(num_classes, **{k: v for k, v in spec.options.items() if k in allowed}), None, "random"
        )
    if spec.name.startswith("timm:"):
        from .timm_backbone import create_timm_model  # timm takes seconds to import: only timm models pay for it

        network, data_config, source = create_timm_model(
            spec.name[len("timm:") :],
            num_classes,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            drop_rate=float(spec.options.get("dropout", 0.2)),
        )
        if spec.options.get("embedding_dim"):
            from .retrieval import add_retrieval_neck

            add_retrieval_neck(network, int(spec.options["embedding_dim"]), num_classes)
        return BuiltModel(network, PreprocessConfig.from_timm(data_config, spec.options.get("input_size")), source)
    raise ModelNameError(
        f"Unknown model '{spec.name}'; use --model scratch or --model timm:<timm model name> (e.g. timm:tf_efficientnet_lite0)."
    )
