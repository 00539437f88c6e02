"""The run's Accelerator, set up the way Accelerate's own tools expect.

Precision and device come from `accelerate launch` / `accelerate config` unless an option sets them; trackers
(`--report-to tensorboard wandb ...`) write into the run folder and get the run's configuration; metrics.csv
(tracking.CSVTracker) is always one of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import ProjectConfiguration

from .tracking import CSVTracker

PROJECT_NAME = "landmark"  # the trackers' project / run name
LOGS_DIR = "logs"  # RUN_DIR/logs/landmark: where file-based trackers (tensorboard, ...) write


def make_accelerator(args: argparse.Namespace, run_dir: Path) -> Accelerator:
    """The Accelerator of a run. --mixed-precision / --cpu left unset (None) defer to the launcher's settings."""
    # Processes started by torchrun (accelerate launch --multi_gpu) on a machine without GPUs train on CPUs over gloo.
    torchrun_without_gpu = not torch.cuda.is_available() and "LOCAL_RANK" in os.environ
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,  # None: $ACCELERATE_MIXED_PRECISION (accelerate launch), else "no"
        gradient_accumulation_steps=args.grad_accum,
        cpu=bool(args.cpu or torchrun_without_gpu),  # unset: $ACCELERATE_USE_CPU (accelerate launch --cpu) decides
        log_with=[CSVTracker(run_dir), *(args.report_to or [])],
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / LOGS_DIR)),
    )
    if accelerator.is_main_process:
        for line in setup_warnings(accelerator, args.report_to or []):
            print(f"warning: {line}", file=sys.stderr, flush=True)
    return accelerator


def setup_warnings(accelerator: Accelerator, report_to: list[str]) -> list[str]:
    """What the launcher's settings would do silently: emulate half precision on a CPU (many times slower), or drop a
    requested tracker whose package is not installed."""
    lines = []
    if accelerator.device.type == "cpu" and accelerator.mixed_precision in ("bf16", "fp16"):
        lines.append(
            f"mixed precision {accelerator.mixed_precision} on a CPU is emulated and many times slower than fp32; "
            "train on the CPU with --mixed-precision no (or `accelerate launch --mixed_precision no`)."
        )
    kept = {str(getattr(t, "value", t)) for t in accelerator.log_with if not isinstance(t, GeneralTracker)}
    for name in report_to:
        if name != "all" and name not in kept:
            lines.append(
                f"--report-to {name} is ignored: its package is not installed (pip install {name}); metrics.csv is written as always."
            )
    return lines


def tracker_config(args: argparse.Namespace, accelerator: Accelerator) -> dict:
    """The run's options as trackers accept them (bool, str, int, float or None), plus what the launcher decided."""
    config = {
        key: ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        for key, value in vars(args).items()
    }
    config = {
        key: value if isinstance(value, (bool, str, int, float, type(None))) else str(value)
        for key, value in config.items()
    }
    config.update(
        mixed_precision=accelerator.mixed_precision,
        num_processes=accelerator.num_processes,
        device=accelerator.device.type,
    )
    return config
