"""`python -m landmark_lib.data download|inspect`: fetch the course dataset, or check a dataset folder.

Expected failures (no network, bad archive, wrong layout) print one line on stderr and exit with code 2,
so scripts can tell them apart from bugs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .download import DEFAULT_URL, DownloadError, download_dataset
from .folder import DatasetError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m landmark_lib.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser("download", help="download, verify and extract the 50-class course dataset")
    download.add_argument("--dest", type=Path, default=Path("data"), help="folder to put landmark_images/ in (default: data)")
    download.add_argument("--url", default=DEFAULT_URL, help="zip URL, mirror, or path of a local landmark_images.zip")
    download.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default: 10)")
    download.add_argument("--keep-zip", action="store_true", help="keep the downloaded zip after extracting it")

    inspect = commands.add_parser("inspect", help="counts, unreadable files, train/test duplicates, mean/std, pictures")
    inspect.add_argument("root", type=Path, help="dataset folder holding train/<class>/ and test/<class>/")
    inspect.add_argument("--out", type=Path, default=None, help="output folder (default: runs/inspect-<root name>)")
    inspect.add_argument("--workers", type=int, default=2, help="decoding processes (default: 2)")
    inspect.add_argument("--samples-per-class", type=int, default=4)
    inspect.add_argument("--max-classes", type=int, default=50, help="classes shown in samples.png (default: 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "download":
            target = download_dataset(args.dest, url=args.url, timeout=args.timeout, keep_zip=args.keep_zip)
            print(f"Dataset ready: {target} (train with --data {target})")
        else:
            from .inspect import inspect_dataset, summary

            out = args.out or Path("runs") / f"inspect-{args.root.expanduser().resolve().name}"
            report = inspect_dataset(args.root, out, samples_per_class=args.samples_per_class,
                                     max_classes=args.max_classes, workers=args.workers)
            print(summary(report))
    except (DownloadError, DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (a download resumes where it stopped when rerun)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
