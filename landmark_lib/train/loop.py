"""Training with Hugging Face Accelerate: setup() checks every input and builds what training needs, then fit()
trains epoch by epoch, keeping the best weights on the validation split and a checkpoint after every epoch.

The same code runs on a CPU, one or several GPUs and several machines (`accelerate launch train_accelerate.py`);
the run folder it writes is described in artifacts/run_folder.py, its options in train/options.py.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sized
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.scheduler import AcceleratedScheduler
from accelerate.utils import set_seed
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..artifacts.run_folder import WEIGHTS_FILE, RunConfig, RunError
from ..artifacts.train_config import TrainConfig
from ..atomic import NO_SPACE, NoSpaceError
from ..data.cache import DEFAULT_CACHE_DIR, CachedImageDataset, CachedSplit, build_cache
from ..data.classes import load_class_info
from ..data.folder import DatasetError, ImageFolderSplit, open_split
from ..data.holdout import kept_classes, without_holdout
from ..data.run_split import run_split
from ..data.transforms import AugmentConfig, EvalTransform, train_transform
from ..embedding import classifier_layer
from ..errors import LandmarkError
from ..labels import ClassInfo
from ..metrics import top_k_hits
from ..models import ModelSpec, create_model
from ..models.trained import save_weights
from ..preprocess import PreprocessConfig
from . import features, objective, options
from .accelerator import PROJECT_NAME, make_accelerator, tracker_config
from .checkpoints import Progress, latest_checkpoint, save_checkpoint
from .finetune import set_frozen_bn_eval, trainable_groups
from .optim import build_optimizer, cosine_with_warmup
from .tracking import plot_curves


@dataclass
class Training:
    """What fit() needs; made by setup()."""

    args: argparse.Namespace
    run_dir: Path
    accelerator: Accelerator
    model: nn.Module  # the whole network: its weights are what the run saves
    net: nn.Module  # what trains (prepared): the model, or its trainable part when features are cached
    optimizer: torch.optim.Optimizer
    scheduler: AcceleratedScheduler
    train_loader: DataLoader
    valid_loader: DataLoader
    progress: Progress
    views: features.ViewDataset | None  # cached features: the dataset whose augmented view changes every epoch


def train(args: argparse.Namespace) -> Path:
    """Train a run with ARGS (train/options.py, resolved); returns the run folder. A resumed run says first what it
    resumes and what is left; one with nothing left says which option would train it further, and loads nothing."""
    if args.resume:
        checkpoint = latest_checkpoint(Path(args.output_dir))
        done = int(checkpoint.name.split("_")[-1]) if checkpoint else 0
        if done >= args.epochs:
            _check_inputs(args, Path(args.output_dir))  # a run of other classes is refused all the same
            print(
                f"Nothing left to train: {args.output_dir} has finished all {args.epochs} epochs of --epochs; to train "
                f"it longer, resume with a higher --epochs (e.g. --resume {args.output_dir} --epochs {args.epochs + 10})."
            )
            return Path(args.output_dir)
        print(
            f"Resuming {args.output_dir} from {checkpoint or 'its start (no finished epoch)'}: {done} of {args.epochs} "
            f"epochs done, {args.epochs - done} left."
        )
    return fit(setup(args))


def setup(args: argparse.Namespace) -> Training:
    """Everything that can be wrong with the inputs is checked before any training starts; a resumed run continues
    from its last complete checkpoint. The order of the steps fixes the seeded random state, so keep it."""
    run_dir = Path(args.output_dir)
    accelerator = make_accelerator(args, run_dir)
    set_seed(args.seed)
    train_split, classes = _check_inputs(args, run_dir)
    resuming = latest_checkpoint(run_dir) if args.resume else None
    spec = ModelSpec(
        args.model,
        {
            "width": args.width,
            "depth": args.depth,
            "dropout": args.dropout,
            "input_size": args.input_size,
            **({"embedding_dim": args.embedding_dim} if getattr(args, "embedding_dim", None) else {}),
        },
    )
    built = create_model(
        spec, len(classes), pretrained=not args.no_pretrained and not resuming, pretrained_file=args.pretrained_file
    )
    model = built.network
    cached, rows, pre = _photos(args, accelerator, train_split, built.preprocess)
    aug = AugmentConfig(
        args.scale_min, args.hflip, args.color_jitter, args.auto_augment, args.random_erasing, args.degrade
    )
    source = RunConfig.load(run_dir).weights_source if resuming else built.weights_source
    config = RunConfig(model=spec, classes=classes, preprocess=pre, weights_source=source, args=vars(args))
    if accelerator.is_main_process:
        config.save(run_dir)
    accelerator.print(
        f"{len(classes)} classes, {len(rows[0])} train / {len(rows[1])} valid photos; model {args.model} ({built.weights_source}); run folder {run_dir}"
    )

    net, views, train_loader, valid_loader = _what_trains(
        args, accelerator, model, cached, rows, pre, aug, resuming is not None
    )
    optimizer = build_optimizer(
        net, args.optimizer, args.lr, args.weight_decay, args.layer_decay if args.model != "scratch" else None
    )
    net, optimizer, train_loader, valid_loader = accelerator.prepare(net, optimizer, train_loader, valid_loader)
    steps_per_epoch = -(-len(train_loader) // args.grad_accum) * accelerator.num_processes
    scheduler = accelerator.prepare(
        cosine_with_warmup(optimizer, int(args.warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch)
    )
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    accelerator.init_trackers(PROJECT_NAME, config=tracker_config(args, accelerator))
    if resuming:
        try:
            accelerator.load_state(str(resuming))
        except Exception as error:  # noqa: BLE001 - torch, safetensors and pickle each raise their own errors
            raise RunError(
                f"The checkpoint {resuming} is damaged ({type(error).__name__}); delete that folder to resume from the one before it, or start a new run."
            ) from None
        accelerator.print(f"Resumed from {resuming}: {progress.epoch} epochs done, best {args.monitor} {progress.best}")
    return Training(
        args, run_dir, accelerator, model, net, optimizer, scheduler, train_loader, valid_loader, progress, views
    )


def _check_inputs(args: argparse.Namespace, run_dir: Path) -> tuple[ImageFolderSplit, list[ClassInfo]]:
    """The train split (and that the test split fits it), the classes the model learns (all but --holdout-classes),
    and that a resumed run has the same ones."""
    train_split = open_split(args.data, "train")
    if any((root / "test").is_dir() for root in train_split.roots):
        open_split(args.data, "test", class_names=train_split.class_names)
    names = kept_classes(train_split.class_names, getattr(args, "holdout_classes", None))
    classes = load_class_info(args.data, names)
    if args.resume:
        saved = RunConfig.load(run_dir)
        if saved.class_names != names:
            raise RunError(
                f"--resume {run_dir} was trained on other classes ({len(saved.class_names)} vs {len(names)} now in {args.data}); start a new run."
            )
    return train_split, classes


def _photos(
    args: argparse.Namespace, accelerator: Accelerator, train_split: ImageFolderSplit, pre: PreprocessConfig | None
) -> tuple[CachedSplit, tuple[np.ndarray, np.ndarray], PreprocessConfig]:
    """The resized cache of the train split, its (train, valid) rows, and the preprocessing: the backbone's, or for the
    scratch CNN normalisation with the mean/std of the training photos only (never test)."""
    cache_size = (pre or PreprocessConfig(input_size=args.input_size)).resize_size
    with accelerator.main_process_first():
        cached = build_cache(train_split, cache_size, args.cache_dir)
    if cached.skipped:
        accelerator.print(f"Skipped {len(cached.skipped)} unreadable images, e.g.: {cached.skipped[0]}")
    holdout = getattr(args, "holdout_classes", None)
    cached = without_holdout(cached, train_split.class_names, holdout)
    train_split = replace(train_split, class_names=kept_classes(train_split.class_names, holdout))
    check_readable_classes(train_split, cached)
    train_rows, valid_rows = run_split(train_split, cached, TrainConfig.from_dict(vars(args)))
    if not len(valid_rows):
        raise DatasetError(
            f"The split leaves no validation photos (--valid-fraction {args.valid_fraction}); model selection needs them: "
            "raise --valid-fraction or add photos (a class needs at least 2 to give one to validation)."
        )
    if pre is None:
        sample = cached.images[np.sort(train_rows[:: max(1, len(train_rows) // 2000)])].astype(np.float32) / 255.0
        mean, std = (tuple(v.round(4).tolist()) for v in (sample.mean((0, 1, 2)), sample.std((0, 1, 2))))
        pre = PreprocessConfig(input_size=args.input_size, mean=mean, std=std)
    return cached, (train_rows, valid_rows), pre


def check_readable_classes(split: ImageFolderSplit, cached: CachedSplit) -> None:
    """Stop before training when a class has no readable photo: it could never be learned, only silently missing."""
    readable = np.bincount(cached.targets[cached.readable], minlength=len(split.class_names))
    empty = [name for name, count in zip(split.class_names, readable) if count == 0]
    if empty:
        more = f" (nor of {len(empty) - 1} more classes)" if len(empty) > 1 else ""
        raise DatasetError(
            f"None of the photos of class '{empty[0]}' can be read{more}; replace them with readable photos "
            "or remove the class folder (the skipped images are listed above)."
        )


def _what_trains(
    args: argparse.Namespace,
    accelerator: Accelerator,
    model: nn.Module,
    cached: CachedSplit,
    rows: tuple[np.ndarray, np.ndarray],
    pre: PreprocessConfig,
    aug: AugmentConfig,
    resuming: bool,
) -> tuple[nn.Module, features.ViewDataset | None, DataLoader, DataLoader]:
    """(the module that trains, the cached-feature dataset or None, train loader, valid loader): the model on the
    cached photos, or with cached features (the CPU fast path) its trainable part on the frozen part's outputs."""
    run_dir = Path(args.output_dir)
    transforms = (EvalTransform(pre) if args.no_augment else train_transform(pre, aug), EvalTransform(pre))
    train_set: Dataset = CachedImageDataset(cached, rows[0], transforms[0])
    valid_set: Dataset = CachedImageDataset(cached, rows[1], transforms[1])
    net, views = model, None
    first_group = trainable_groups(model, args.strategy, args.train_stages) if args.model != "scratch" else 0
    if features.wanted(args, accelerator):
        frozen, net = features.split_for_feature_cache(model, args.strategy, first_group)
        if resuming:  # frozen layers never change: take them from the run's weights before computing features
            model.load_state_dict(load_file(str(run_dir / WEIGHTS_FILE)))
        recipe = {"preprocess": pre.to_dict(), "augment": None if args.no_augment else vars(aug), "seed": args.seed}
        views, valid_set = features.feature_datasets(
            frozen, cached, rows, transforms, recipe, args, accelerator, run_dir
        )
        train_set = views
    net = objective.with_metric_loss(
        net, model, int(cast(nn.Linear, classifier_layer(model)).out_features), args.metric_loss
    )
    workers = 0 if views is not None else args.num_workers  # cached features are in memory: workers only add overhead
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=len(cast(Sized, train_set)) > args.batch_size,
        num_workers=workers,
        generator=generator,
        persistent_workers=False,
    )
    return net, views, train_loader, DataLoader(valid_set, batch_size=args.batch_size, num_workers=workers)


def fit(t: Training) -> Path:
    """Train until --epochs or early stopping; after every epoch: validate, keep the best weights, checkpoint."""
    args, accelerator, progress = t.args, t.accelerator, t.progress
    for epoch in range(progress.epoch, args.epochs):
        if progress.bad_epochs >= args.patience:
            accelerator.print(
                f"Early stopping: {args.monitor} did not improve for {args.patience} epochs (--patience); to train on, "
                f"resume with a higher --patience (e.g. --resume {t.run_dir} --patience {args.patience + 5})."
            )
            break
        trained = _train_epoch(t, epoch)
        metrics = {**validate(t.net, t.valid_loader, accelerator), **trained}
        better = progress.record(metrics[args.monitor], lower_is_better=args.monitor == "valid_loss")
        if better and accelerator.is_main_process:
            save_weights(t.model, t.run_dir)  # the full model: shares its parameters with the prepared `net`
        accelerator.log(metrics, step=epoch + 1)
        accelerator.print(
            f"epoch {epoch + 1}: "
            + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
            + (" (best)" if better else "")
        )
        save_checkpoint(accelerator, t.run_dir, epoch + 1)
    accelerator.end_training()
    if accelerator.is_main_process:
        plot_curves(t.run_dir)
        accelerator.print(f"Done. Best {args.monitor} {progress.best:.4f}; weights in {t.run_dir / WEIGHTS_FILE}")
    return t.run_dir


def _train_epoch(t: Training, epoch: int) -> dict:
    """One pass over the training loader; the loss and sample count summed over all processes."""
    args, accelerator, net = t.args, t.accelerator, t.net
    if t.views is not None:
        t.views.view = epoch % args.feature_views
    net.train()
    set_frozen_bn_eval(t.model, args.freeze_bn)
    start, total_loss, seen = time.time(), 0.0, 0
    bar = tqdm(
        t.train_loader,
        desc=f"epoch {epoch + 1}/{args.epochs}",
        disable=not accelerator.is_local_main_process,
        unit="batch",
    )
    for inputs, targets in bar:
        with accelerator.accumulate(net):
            loss = objective.loss(net, net(inputs), targets, args.label_smoothing, args.metric_loss_weight)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.clip_grad:
                accelerator.clip_grad_norm_(net.parameters(), args.clip_grad)
            t.optimizer.step()
            t.scheduler.step()
            t.optimizer.zero_grad()
        total_loss += loss.item() * targets.numel()
        seen += targets.numel()
        bar.set_postfix(loss=f"{total_loss / seen:.3f}")
    seconds = time.time() - start
    return {
        "train_loss": accelerator.reduce(
            torch.tensor(total_loss / max(seen, 1), device=accelerator.device), "mean"
        ).item(),
        "train_samples": accelerator.reduce(torch.tensor(seen, device=accelerator.device), "sum").item(),
        "num_processes": accelerator.num_processes,
        "epoch_seconds": round(seconds, 1),
        "lr": t.scheduler.get_last_lr()[0],
    }


def validate(net: nn.Module, loader: DataLoader, accelerator: Accelerator) -> dict:
    """Loss, top-1 and top-5 over the validation set; gather_for_metrics counts each image exactly once."""
    net.eval()
    loss, correct1, correct5, count = 0.0, 0.0, 0.0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            logits = objective.logits_of(net(inputs)).float()
            logits, targets = accelerator.gather_for_metrics((logits, targets))
            loss += F.cross_entropy(logits, targets, reduction="sum").item()
            correct1 += top_k_hits(logits, targets, 1).sum().item()
            correct5 += top_k_hits(logits, targets, 5).sum().item()
            count += targets.numel()
    n = max(count, 1)
    return {"valid_loss": loss / n, "valid_acc": correct1 / n, "valid_top5": correct5 / n, "valid_count": count}


def run(args: argparse.Namespace) -> None:
    """`landmark train` (and `accelerate launch train_accelerate.py`)."""
    args = options.resolve(args)
    try:
        train(args)
    except LandmarkError:
        raise
    except (
        Exception
    ) as error:  # torch.save and safetensors report a full disk without errno; anything else is re-raised
        folder = full_disk(error, args)
        if folder is None:
            raise
        raise LandmarkError(
            f"no space left on {folder}; free some space there, or pass --output-dir / --cache-dir on a bigger disk."
        ) from None


def full_disk(error: BaseException, args: argparse.Namespace) -> str | None:
    """The folder that ran out of space if ERROR comes from a full disk (errno, or a write folder left with < 4 MiB)."""
    if isinstance(error, NoSpaceError):
        return str(error.folder)
    folders = [
        str(f)
        for f in (args.output_dir, getattr(args, "resume", None), getattr(args, "cache_dir", None), DEFAULT_CACHE_DIR)
        if f
    ]
    folders = [f for f in folders if Path(f).exists()]
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        return str(Path(error.filename).parent) if error.filename else (folders[0] if folders else ".")
    return next((f for f in folders if shutil.disk_usage(f).free < 4 * 2**20), None)
