"""Train a landmark classifier (scratch CNN or timm backbone) with Hugging Face Accelerate.

    python train_accelerate.py --data ../shared/data/world_landmarks --model scratch --epochs 30
    accelerate launch --num_processes 2 train_accelerate.py --data DIR --model timm:tf_efficientnet_lite0
    python train_accelerate.py --resume runs/NAME          # continue a killed run

The run folder holds config.json (everything needed to rebuild and serve the model), model.safetensors (best
weights on the validation split), metrics.csv, curves.png and state/ (Accelerate checkpoints, one per epoch).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from landmark_lib import atomic
from landmark_lib.atomic import NO_SPACE, NoSpaceError
from landmark_lib.data.cache import DEFAULT_CACHE_DIR, CachedImageDataset, build_cache
from landmark_lib.data.folder import (
    DatasetError,
    data_roots,
    load_class_info,
    open_split,
)
from landmark_lib.data.transforms import AugmentConfig, EvalTransform, train_transform
from landmark_lib.feature_store import build_feature_store
from landmark_lib.finetune import (
    FEATURE_CACHE_FILE,
    STRATEGIES,
    set_frozen_bn_eval,
    split_for_feature_cache,
    trainable_groups,
)
from landmark_lib.models import ModelNameError, ModelSpec, create_model
from landmark_lib.models.pretrained import PretrainedWeightsError
from landmark_lib.models.timm_backbone import UnknownModelError
from landmark_lib.optim import build_optimizer, cosine_with_warmup
from landmark_lib.preprocess import PreprocessConfig
from landmark_lib.run import WEIGHTS_FILE, RunConfig, RunError, save_weights
from landmark_lib.run_photos import run_split
from landmark_lib.tracking import CSVTracker, plot_curves

RESUMABLE_KEYS = ("epochs", "patience", "num_workers")


class Progress:
    """Epoch counter, best validation score and early-stopping patience, saved with every Accelerate checkpoint."""

    def __init__(self) -> None:
        self.epoch, self.best, self.bad_epochs = 0, None, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.best, self.bad_epochs = state["epoch"], state["best"], state["bad_epochs"]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest fully written checkpoint (a kill during save leaves no 'complete' marker, so it is ignored)."""
    done = sorted(p.parent for p in (run_dir / "state").glob("epoch_*/complete"))
    return done[-1] if done else None


def save_checkpoint(accelerator: Accelerator, run_dir: Path, epoch: int, keep: int = 2) -> None:
    folder = run_dir / "state" / f"epoch_{epoch:04d}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (folder / "complete").touch()
        for old in sorted((run_dir / "state").glob("epoch_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def resolve_resume(args: argparse.Namespace) -> argparse.Namespace:
    """Reload a killed run's arguments; refuse a folder made for another model or dataset."""
    run_dir = Path(args.resume)
    saved = RunConfig.load(run_dir).args
    if args.model and args.model != saved["model"]:
        raise RunError(f"--resume {run_dir} is a run of model '{saved['model']}', not '{args.model}'; drop --model or start a new run.")
    if args.data and [p.resolve() for p in data_roots(args.data)] != [p.resolve() for p in data_roots(saved["data"])]:
        raise RunError(f"--resume {run_dir} was trained on {saved['data']}, not {args.data}; drop --data or start a new run.")
    merged = {**vars(build_parser().parse_args([])), **saved}  # options added since the run started keep their defaults
    merged.update({k: getattr(args, k) for k in RESUMABLE_KEYS if getattr(args, k) is not None})
    merged["resume"], merged["output_dir"] = str(run_dir), str(run_dir)
    return argparse.Namespace(**merged)


def evaluate(model, loader, accelerator: Accelerator) -> dict:
    """Loss, top-1 and top-5 over the validation set; gather_for_metrics counts each image exactly once."""
    model.eval()
    losses, correct1, correct5, count = [], 0, 0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            logits = model(inputs).float()
            logits, targets = accelerator.gather_for_metrics((logits, targets))
            losses.append(F.cross_entropy(logits, targets, reduction="sum").item())
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct1 += (top5[:, 0] == targets).sum().item()
            correct5 += (top5 == targets[:, None]).any(dim=1).sum().item()
            count += targets.numel()
    return {"valid_loss": sum(losses) / max(count, 1), "valid_acc": correct1 / max(count, 1), "valid_top5": correct5 / max(count, 1), "valid_count": count}


def training_function(args: argparse.Namespace) -> Path:
    run_dir = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.grad_accum,
        # Processes started by torchrun (accelerate launch --multi_gpu) on a machine without GPUs train on CPUs over gloo.
        cpu=args.cpu or (not torch.cuda.is_available() and "LOCAL_RANK" in os.environ),
        log_with=[CSVTracker(run_dir)] + list(args.report_to or []),
    )
    set_seed(args.seed)

    # Everything that can be wrong with the inputs is checked before any training starts.
    train_split = open_split(args.data, "train")
    if any((root / "test").is_dir() for root in train_split.roots):
        open_split(args.data, "test", class_names=train_split.class_names)
    classes = load_class_info(args.data, train_split.class_names)
    spec = ModelSpec(args.model, {"width": args.width, "depth": args.depth, "dropout": args.dropout, "input_size": args.input_size})
    resuming = latest_checkpoint(run_dir) if args.resume else None
    if args.resume:
        saved = RunConfig.load(run_dir)
        if saved.class_names != train_split.class_names:
            raise RunError(f"--resume {run_dir} was trained on other classes ({len(saved.class_names)} vs {len(train_split.class_names)} now in {args.data}); start a new run.")
    model, pre, source = create_model(spec, len(classes), pretrained=not args.no_pretrained and not resuming, pretrained_file=args.pretrained_file)

    cache_size = (pre or PreprocessConfig(input_size=args.input_size)).resize_size  # scratch: mean/std come later
    with accelerator.main_process_first():
        cached = build_cache(train_split, cache_size, args.cache_dir)
    if cached.skipped:
        accelerator.print(f"Skipped {len(cached.skipped)} unreadable images, e.g.: {cached.skipped[0]}")
    check_readable_classes(train_split, cached)
    train_rows, valid_rows = run_split(train_split, cached, vars(args))
    if not len(valid_rows):
        raise DatasetError(f"The split leaves no validation photos (--valid-fraction {args.valid_fraction}); model selection needs them: "
                           "raise --valid-fraction or add photos (a class needs at least 2 to give one to validation).")

    if pre is None:  # scratch: normalise with the mean/std of the training photos only (never test)
        sample = cached.images[np.sort(train_rows[:: max(1, len(train_rows) // 2000)])].astype(np.float32) / 255.0
        pre = PreprocessConfig(input_size=args.input_size, mean=tuple(sample.mean((0, 1, 2)).round(4).tolist()), std=tuple(sample.std((0, 1, 2)).round(4).tolist()))
    aug = AugmentConfig(args.scale_min, args.hflip, args.color_jitter, args.auto_augment, args.random_erasing, args.degrade)
    config = RunConfig(model=spec, classes=classes, preprocess=pre, weights_source=saved.weights_source if resuming else source, args=vars(args))
    if accelerator.is_main_process:
        config.save(run_dir)
    accelerator.print(f"{len(classes)} classes, {len(train_rows)} train / {len(valid_rows)} valid photos; model {args.model} ({source}); run folder {run_dir}")

    train_set = CachedImageDataset(cached, train_rows, EvalTransform(pre) if args.no_augment else train_transform(pre, aug))
    valid_set = CachedImageDataset(cached, valid_rows, EvalTransform(pre))

    net = model
    if args.model != "scratch":
        first_group = trainable_groups(model, args.strategy, args.train_stages)
    use_feature_cache = args.model != "scratch" and args.strategy != "full" and (
        args.feature_cache == "on" or (args.feature_cache == "auto" and accelerator.device.type == "cpu" and accelerator.num_processes == 1)
    )
    if use_feature_cache:
        # CPU fast path: run the frozen layers once per augmented view, then train only the rest on their outputs.
        frozen, net = split_for_feature_cache(model, args.strategy, first_group)
        if resuming:  # frozen layers never change: take them from the run's weights before computing features
            model.load_state_dict(load_file(str(run_dir / WEIGHTS_FILE)))
        cache_start = time.time()
        recipe = {"preprocess": pre.to_dict(), "augment": None if args.no_augment else vars(aug), "seed": args.seed}
        with accelerator.main_process_first():
            store = build_feature_store(
                frozen, cached, train_set.transform, valid_set.transform, args.feature_views, recipe,
                args.cache_dir, args.batch_size, args.num_workers, args.feature_dtype,
            )
        train_features, valid_features = store.train_views(train_rows), store.eval_view(valid_rows)
        if accelerator.is_main_process:  # the one-time cost is part of the run's training time (landmark_lib.compare)
            timing = {"seconds": round(time.time() - cache_start, 1), "views": args.feature_views, "train_photos": len(train_rows), "valid_photos": len(valid_rows), "store": str(store.folder)}
            atomic.write_text(run_dir / FEATURE_CACHE_FILE, json.dumps(timing, indent=2))
        train_targets = torch.as_tensor(cached.targets[train_rows])
        train_set = _ViewDataset(train_features, train_targets)
        valid_set = TensorDataset(valid_features.float(), torch.as_tensor(cached.targets[valid_rows]))

    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=len(train_set) > args.batch_size, num_workers=0 if use_feature_cache else args.num_workers, generator=generator, persistent_workers=False)
    valid_loader = DataLoader(valid_set, batch_size=args.batch_size, num_workers=0 if use_feature_cache else args.num_workers)

    optimizer = build_optimizer(net, args.optimizer, args.lr, args.weight_decay, args.layer_decay if args.model != "scratch" else None)
    net, optimizer, train_loader, valid_loader = accelerator.prepare(net, optimizer, train_loader, valid_loader)
    steps_per_epoch = -(-len(train_loader) // args.grad_accum) * accelerator.num_processes
    scheduler = accelerator.prepare(cosine_with_warmup(optimizer, int(args.warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch))
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    accelerator.init_trackers("landmark")

    if resuming:
        try:
            accelerator.load_state(str(resuming))
        except Exception as error:  # noqa: BLE001 - torch, safetensors and pickle each raise their own errors
            raise RunError(f"The checkpoint {resuming} is damaged ({type(error).__name__}); delete that folder to resume from the one before it, or start a new run.") from None
        accelerator.print(f"Resumed from {resuming}: {progress.epoch} epochs done, best {args.monitor} {progress.best}")

    for epoch in range(progress.epoch, args.epochs):
        if progress.bad_epochs >= args.patience:
            accelerator.print(f"Early stopping: {args.monitor} did not improve for {args.patience} epochs.")
            break
        if use_feature_cache:
            train_set.view = epoch % args.feature_views
        net.train()
        set_frozen_bn_eval(model, args.freeze_bn)
        start, total_loss, seen = time.time(), 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not accelerator.is_local_main_process, unit="batch")
        for inputs, targets in bar:
            with accelerator.accumulate(net):
                logits = net(inputs)
                loss = F.cross_entropy(logits.float(), targets, label_smoothing=args.label_smoothing)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.clip_grad:
                    accelerator.clip_grad_norm_(net.parameters(), args.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total_loss += loss.item() * targets.numel()
            seen += targets.numel()
            bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        train_seconds = time.time() - start
        train_loss = accelerator.reduce(torch.tensor(total_loss / max(seen, 1), device=accelerator.device), "mean").item()
        train_samples = accelerator.reduce(torch.tensor(seen, device=accelerator.device), "sum").item()
        metrics = evaluate(net, valid_loader, accelerator)
        metrics.update(
            train_loss=train_loss, train_samples=train_samples, num_processes=accelerator.num_processes,
            epoch_seconds=round(train_seconds, 1), lr=scheduler.get_last_lr()[0],
        )
        score = metrics[args.monitor]
        better = progress.best is None or (score < progress.best if args.monitor == "valid_loss" else score > progress.best)
        if better:
            progress.best, progress.bad_epochs = score, 0
            if accelerator.is_main_process:
                save_weights(model, run_dir)  # the full model: shares its parameters with the prepared `net`
        else:
            progress.bad_epochs += 1
        progress.epoch = epoch + 1
        accelerator.log(metrics, step=epoch + 1)
        accelerator.print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()) + (" (best)" if better else ""))
        save_checkpoint(accelerator, run_dir, epoch + 1)

    accelerator.end_training()
    if accelerator.is_main_process:
        plot_curves(run_dir)
        accelerator.print(f"Done. Best {args.monitor} {progress.best:.4f}; weights in {run_dir / 'model.safetensors'}")
    return run_dir


def check_readable_classes(split, cached) -> None:
    """Stop before training when a class has no readable photo: it could never be learned, only silently missing."""
    readable = np.bincount(cached.targets[cached.valid], minlength=len(split.class_names))
    empty = [name for name, count in zip(split.class_names, readable) if count == 0]
    if empty:
        more = f" (nor of {len(empty) - 1} more classes)" if len(empty) > 1 else ""
        raise DatasetError(f"None of the photos of class '{empty[0]}' can be read{more}; replace them with readable photos "
                           "or remove the class folder (the skipped images are listed above).")


class OptionError(ValueError):
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
    "valid_fraction": ("a number in (0, 1): model selection and early stopping need validation photos", lambda v: 0 < v < 1),
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


class _ViewDataset(torch.utils.data.Dataset):
    """Cached features of one augmented view per epoch (the view changes between epochs)."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor):
        self.features, self.targets, self.view = features, targets, 0

    def __len__(self) -> int:
        return self.features.shape[1]

    def __getitem__(self, index: int):
        return self.features[self.view, index].float(), self.targets[index]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", help="dataset root(s) with train/<class>/ (and test/<class>/); several roots merge by class folder")
    p.add_argument("--exclude", nargs="*", metavar="SOURCE[:CLASS]", help="leave these collections (provenance.csv source_set) out of training, e.g. for the cross-source check")
    p.add_argument("--output-dir", help="run folder (default runs/<model>-<time>)")
    p.add_argument("--resume", help="continue the run in this folder from its last checkpoint")
    p.add_argument("--model", help="'scratch' or 'timm:<name>' (default scratch)")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=float, default=0.5, help="scratch CNN channel multiplier")
    g.add_argument("--depth", type=int, default=2, help="scratch CNN residual blocks per stage")
    g.add_argument("--dropout", type=float, default=0.2)
    g.add_argument("--input-size", type=int, help="crop size (default 128 for scratch, the backbone's own for timm)")
    g.add_argument("--pretrained-file", help="pretrained weights for a timm backbone (safetensors or .pth state dict)")
    g.add_argument("--no-pretrained", action="store_true", help="timm backbone from random weights")
    g.add_argument("--strategy", choices=STRATEGIES, default="full", help="timm: which layers train (full: all, with --layer-decay)")
    g.add_argument("--train-stages", type=int, default=2, help="partial: trailing backbone stages that train")
    g.add_argument("--layer-decay", type=float, help="layer-wise LR decay for timm backbones, e.g. 0.75")
    g.add_argument("--freeze-bn", action="store_true", help="keep every BatchNorm in eval mode (frozen layers' BN always is)")
    g.add_argument("--feature-cache", choices=("auto", "on", "off"), default="auto", help="cache the frozen part's outputs (auto: on for CPU linear/partial)")
    g.add_argument("--feature-views", type=int, default=4, help="augmented views cached per training photo")
    g.add_argument("--feature-dtype", choices=("float16", "float32"), default="float16")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--warmup-epochs", type=float, default=1.0)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--clip-grad", type=float, default=5.0)
    g.add_argument("--grad-accum", type=int, default=1)
    g.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    g.add_argument("--patience", type=int, help="early stopping: epochs without improvement (default 10)")
    g.add_argument("--monitor", choices=("valid_loss", "valid_acc"), default="valid_acc")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("data")
    g.add_argument("--valid-fraction", type=float, default=0.15)
    g.add_argument("--num-workers", type=int, help="DataLoader workers (default 2)")
    g.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="where the resized copy of the dataset lives")
    g.add_argument("--no-augment", action="store_true", help="train on the plain eval crop (baselines, exactness tests)")
    g.add_argument("--scale-min", type=float, default=0.35, help="RandomResizedCrop minimum area")
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=0.3)
    g.add_argument("--auto-augment", default="rand-m7-mstd0.5", help="timm auto-augment policy ('' for none)")
    g.add_argument("--random-erasing", type=float, default=0.1)
    g.add_argument("--degrade", type=float, default=0.3, help="probability of each camera degradation (low-res, blur, JPEG)")
    g.add_argument("--report-to", nargs="*", help="extra Accelerate trackers (tensorboard, wandb, ...)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.resume:
        args = resolve_resume(args)
        check_options(args)
        return args
    if not args.data:
        raise DatasetError("--data is required: the dataset folder with train/<class>/*.jpg (e.g. ../shared/data/world_landmarks).")
    args.model = args.model or "scratch"
    args.epochs = 30 if args.epochs is None else args.epochs  # `or` would turn an explicit --epochs 0 into 30
    args.patience = 10 if args.patience is None else args.patience
    args.num_workers = 2 if args.num_workers is None else args.num_workers
    args.auto_augment = args.auto_augment or None
    if args.model == "scratch":
        args.input_size = args.input_size or 128
    args.output_dir = args.output_dir or f"runs/{args.model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(args.output_dir, "state").exists():
        raise RunError(f"{args.output_dir} already holds a run; use --resume {args.output_dir} to continue it or pick another --output-dir.")
    check_options(args)
    return args


def full_disk(error: BaseException, argv: list[str] | None) -> str | None:
    """The folder that ran out of space if ERROR comes from a full disk (errno, or a write folder left with < 4 MiB)."""
    if isinstance(error, NoSpaceError):
        return str(error.folder)
    argv = sys.argv[1:] if argv is None else argv
    folders = [argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in ("--output-dir", "--resume", "--cache-dir")]
    folders = [f for f in folders + [str(DEFAULT_CACHE_DIR)] if Path(f).exists()]
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        return str(Path(error.filename).parent) if error.filename else (folders[0] if folders else ".")
    return next((f for f in folders if shutil.disk_usage(f).free < 4 * 2**20), None)


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(argv)
        training_function(args)
    except (DatasetError, RunError, OptionError, ModelNameError, UnknownModelError, PretrainedWeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:  # torch.save and safetensors report a full disk without errno; anything else is re-raised
        folder = full_disk(error, argv)
        if folder is None:
            raise
        print(f"error: no space left on {folder}; free some space there, or pass --output-dir / --cache-dir on a bigger disk.", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
