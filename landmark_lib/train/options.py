"""The `landmark train` command line (and `accelerate launch train_accelerate.py`): its options, generated from
artifacts/train_config.TrainConfig, the defaults that depend on other options, their checks, and --resume.

Kept free of heavy imports: the CLI builds this parser for every command, including `landmark serve`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ..artifacts import train_config
from ..artifacts.run_folder import STATE_DIR, RunConfig, RunError
from ..data.folder import DatasetError, data_roots
from ..errors import LandmarkError

DESCRIPTION = """Train a landmark classifier (the scratch CNN or a timm backbone) with Hugging Face Accelerate.

    landmark train --data ../shared/data/world_landmarks --model scratch --epochs 30
    accelerate launch --num_processes 2 train_accelerate.py --data DIR --model timm:tf_efficientnet_lite0
    landmark train --resume runs/NAME          # continue a killed run

The run folder holds config.json (everything needed to rebuild and serve the model), model.safetensors (best
weights on the validation split), metrics.csv, curves.png and state/ (Accelerate checkpoints, one per epoch).
"""
RESUMABLE_KEYS = ("epochs", "patience", "num_workers", "threads")  # options a resumed run may change


def add_arguments(p: argparse.ArgumentParser) -> None:
    """All options of a training run (artifacts/train_config.TrainConfig): what to train, the model, the
    optimisation, the data."""
    train_config.add_arguments(p)


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
    "threads": ("a whole number >= 1", lambda v: v is None or v >= 1),
    "feature_views": ("a whole number >= 1", lambda v: v >= 1),
    "train_stages": ("a whole number >= 1", lambda v: v >= 1),
    "depth": ("a whole number >= 1", lambda v: v >= 1),
    "input_size": ("a crop size between 16 and 1024 pixels", lambda v: v is None or 16 <= v <= 1024),
    "embedding_dim": ("a whole number between 16 and 4096", lambda v: v is None or 16 <= v <= 4096),
    "metric_loss_weight": ("a number >= 0", lambda v: v >= 0),
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
