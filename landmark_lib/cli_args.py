"""Argument types of the `landmark` command: each refuses a bad value with a one-line usage error (argparse prints
it and exits 2) before any model or dataset is loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

TAG_FORMATS = (".jsonl", ".csv", ".parquet")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def threshold_arg(text: str) -> float:
    """--threshold: a probability in [0, 1], else a one-line usage error (outside it every or no landmark is named)."""
    from .recognition import check_threshold

    try:
        return check_threshold(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1 (e.g. 0.35), got {text!r}") from None


def existing_dir(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return Path(text)


def tag_output(text: str) -> Path:
    if Path(text).suffix.lower() not in TAG_FORMATS:
        raise argparse.ArgumentTypeError(f"must end in {', '.join(TAG_FORMATS)}, got {Path(text).name}")
    return Path(text)


def photo_source(text: str) -> str | Path:
    """A local folder, or an object-storage URI (s3://, gs://, ...) that pyarrow reads (for --engine ray)."""
    return text if "://" in text else existing_dir(text)


THREADS_HELP = (
    "CPU threads for the network (torch, ONNX Runtime) and photo decoding (default: the CPUs this process may use: "
    "affinity and container quota, less those other processes keep busy; $OMP_NUM_THREADS if set)"
)


def add_threads(parser: argparse.ArgumentParser) -> None:
    """--threads on a command that computes (landmark_lib/threads.py applies it before the command runs)."""
    parser.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)


def cores() -> int:
    """A default number of decoding workers: the CPUs this process may use (landmark_lib/threads.py)."""
    from . import threads

    return threads.count()


def review_file(text: str) -> Path:
    if Path(text).suffix.lower() not in (".html", ".csv"):
        raise argparse.ArgumentTypeError(f"must end in .html or .csv, got {Path(text).name}")
    return Path(text)
