"""The options of `landmark data download | inspect` and `landmark cache info | clear`."""

from __future__ import annotations

from pathlib import Path

from ..cli_args import add_threads
from ..data.download import DEFAULT_URL
from .command import command, subcommands


def add_data(parent) -> None:
    """`landmark data download | inspect`."""
    commands = subcommands(parent, "data", "download the course dataset or inspect a dataset folder")
    download = command(
        commands,
        "download",
        "landmark_lib.data.download:run",
        "download, verify and extract the 50-class course dataset",
    )
    download.add_argument("--dest", type=Path, default=Path("data"), help="folder to put landmark_images/ in")
    download.add_argument("--url", default=DEFAULT_URL, help="zip URL, mirror, or path of a local landmark_images.zip")
    download.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    download.add_argument("--keep-zip", action="store_true", help="keep the downloaded zip after extracting it")
    inspect = command(
        commands,
        "inspect",
        "landmark_lib.data.inspect:run",
        "counts, unreadable files, train/test duplicates, mean/std, pictures",
    )
    inspect.add_argument("root", type=Path, help="dataset folder holding train/<class>/ and test/<class>/")
    inspect.add_argument("--out", type=Path, default=None, help="output folder (default: runs/inspect-<root name>)")
    inspect.add_argument(
        "--workers", type=int, help="decoding processes; 0: decode in this process (default: --threads)"
    )
    inspect.add_argument("--samples-per-class", type=int, default=4, help="photos per class in samples.png")
    inspect.add_argument("--max-classes", type=int, default=50, help="classes shown in samples.png")
    add_threads(inspect)


def add_cache(parent) -> None:
    """`landmark cache info | clear`."""
    commands = subcommands(parent, "cache", "show or free the training cache (resized photos, frozen features)")
    help_dir = "the cache folder (default: $LANDMARK_CACHE, else ~/.cache/landmark_tagger)"
    p = command(
        commands, "info", "landmark_lib.data.cache_commands:run_info", "what the training cache holds, and its size"
    )
    p.add_argument("--cache-dir", type=Path, default=None, help=help_dir)
    p = command(
        commands,
        "clear",
        "landmark_lib.data.cache_commands:run_clear",
        "delete the training cache (rebuilt by the next `landmark train`); entries in use are kept",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help=help_dir)
    p.add_argument(
        "--only",
        choices=("photos", "features"),
        default=None,
        help="delete only the resized photos or only the features (default: both)",
    )
