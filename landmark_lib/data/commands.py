"""`landmark data download | inspect`: their options (light: built for every `landmark` call); each command is the
`run(args)` of its module (download.py, inspect.py)."""

from __future__ import annotations

from pathlib import Path

from ..cli_args import add_threads
from .download import DEFAULT_URL


def add_arguments(commands, command) -> None:
    """The data subcommands; COMMAND(commands, name, target, summary) makes one parser (cli._command)."""
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
