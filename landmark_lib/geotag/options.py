"""The options of `landmark geotag` (a light module: the parser is built without loading the model code)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import add_threads, cores, existing_dir, positive_int, review_file, threshold_arg

SUMMARY = "write the recognised landmarks' places into XMP sidecars (Immich, digiKam, darktable, PhotoPrism, Lightroom)"
DESCRIPTION = """Write the recognised landmarks' places into XMP sidecars; originals are never modified.

    landmark geotag ~/Pictures                         write (or merge) sidecars for confident answers
    landmark geotag ~/Pictures --dry-run               print what would change, write nothing
    landmark geotag ~/Pictures --review review.html    a page (or .csv) to accept rows, then:
    landmark geotag ~/Pictures --apply decisions.csv   write only the accepted rows
    landmark geotag ~/Pictures --spread 30m            also nearby photos of the same trip (an estimate)
    landmark geotag ~/Pictures --undo                  remove exactly what geotag wrote"""


def add_arguments(p: argparse.ArgumentParser, spec_help: str, gallery_help: str) -> None:
    p.add_argument("library", type=existing_dir, help="folder of photos (searched recursively); never modified")
    p.add_argument("--model", default=None, help=spec_help)
    p.add_argument(
        "--threshold", type=threshold_arg, default=None, help="the confident level's threshold (default: export.json's)"
    )
    p.add_argument("--gallery", type=Path, default=None, help=gallery_help)
    p.add_argument("--batch-size", type=positive_int, default=16, help="photos per network call")
    p.add_argument("--workers", type=positive_int, default=cores(), help="decoding threads")
    add_threads(p)
    p.add_argument("--dry-run", action="store_true", help="print what would change and write nothing")
    p.add_argument(
        "--review",
        type=review_file,
        help="write REVIEW.html (thumbnails) or REVIEW.csv instead of sidecars (default: write sidecars)",
    )
    p.add_argument(
        "--apply",
        type=Path,
        help="write the accepted rows of a review CSV (the page's 'Save decisions'; default: no review)",
    )
    p.add_argument("--undo", action="store_true", help="remove what landmark geotag wrote, and nothing else")
    p.add_argument(
        "--spread",
        type=time_window,
        help="also place photos taken within this window (e.g. 30m) of a confidently placed photo in the same folder, as an estimate (default: no spreading)",
    )
    p.add_argument("--force", action="store_true", help="replace a GPS position the photo or its sidecar already has")
    p.add_argument(
        "--sidecar-name",
        choices=("ext", "basename"),
        default="ext",
        help="ext: PHOTO.JPG.xmp (Immich, digiKam, darktable); basename: PHOTO.xmp (Lightroom)",
    )
    p.add_argument(
        "--sidecar-dir",
        type=Path,
        default=None,
        help="write sidecars into this folder, mirroring the library (default: beside the photos)",
    )


def time_window(text: str) -> str:
    """--spread: 30m, 45s, 2h (spread.window_seconds reads it; imported here, so listing the options stays light)."""
    from .spread import window_seconds

    try:
        window_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text
