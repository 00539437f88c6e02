"""The run's Accelerator, set up the way Accelerate's own tools expect.

Precision and device come from `accelerate launch` / `accelerate config` unless an option sets them; trackers
(`--report-to tensorboard wandb ...`) write into the run folder and get the run's configuration; metrics.csv
(tracking.CSVTracker) is always one of them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from .tracking import CSVTracker

PROJECT_NAME = "landmark"  # the trackers' project / run name
LOGS_DIR = "logs"  # RUN_DIR/logs/landmark: where file-based trackers (tensorboard, ...) write


def make_accelerator(args: argparse.Namespace, run_dir: Path) -> Accelerator:
    """The Accelerator of a run. --mixed-precision / --cpu left unset (None) defer to the launcher's settings."""
    # Processes started by torchrun (accelerate launch --multi_gpu) on a machine without GPUs train on CPUs over gloo.
    torchrun_without_gpu = not torch.cuda.is_available() and "LOCAL_RANK" in os.environ
    return Accelerator(
        mixed_precision=args.mixed_precision,  # None: $ACCELERATE_MIXED_PRECISION (accelerate launch), else "no"
        gradient_accumulation_steps=args.grad_accum,
        cpu=bool(args.cpu or torchrun_without_gpu),  # unset: $ACCELERATE_USE_CPU (accelerate launch --cpu) decides
        log_with=[CSVTracker(run_dir), *(args.report_to or [])],
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / LOGS_DIR)),
    )


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
