"""The options of the commands that work on a photo library: `landmark tag` (answers into JSONL, CSV or Parquet)
and `landmark geotag` (places into XMP sidecars)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import (
    add_threads,
    cores,
    existing_dir,
    photo_source,
    positive_int,
    review_file,
    tag_output,
    threshold_arg,
)
from ..recognition import DEFAULT_THRESHOLD
from .command import GALLERY_HELP, SPEC_HELP, command

GEOTAG_SUMMARY = (
    "write the recognised landmarks' places into XMP sidecars (Immich, digiKam, darktable, PhotoPrism, Lightroom)"
)
GEOTAG_DESCRIPTION = """Write the recognised landmarks' places into XMP sidecars; originals are never modified.

    landmark geotag ~/Pictures                         write (or merge) sidecars for confident answers
    landmark geotag ~/Pictures --dry-run               print what would change, write nothing
    landmark geotag ~/Pictures --review review.html    a page (or .csv) to accept rows, then:
    landmark geotag ~/Pictures --apply decisions.csv   write only the accepted rows
    landmark geotag ~/Pictures --spread 30m            also nearby photos of the same trip (an estimate)
    landmark geotag ~/Pictures --undo                  remove exactly what geotag wrote"""


def add_tag(commands) -> None:
    p = command(commands, "tag", "landmark_lib.tagging.command:run", "tag a folder of photos (JSONL, CSV or Parquet)")
    p.add_argument("photo_dir", type=photo_source, help="folder of photos (searched recursively); a URI: --engine ray")
    p.add_argument(
        "--out",
        type=tag_output,
        required=True,
        help="tags.jsonl, tags.csv or tags.parquet (a folder of part files); rerunning resumes it",
    )
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument("--batch-size", type=positive_int, default=16, help="photos per network call")
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        default=None,
        help=f"minimum top probability for 'recognised', 0..1 (default: export.json's, else {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out instead of resuming it")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="decoding threads (local engine; default: --threads) or model actors (ray engine; default: --threads)",
    )
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="run here, or as a Ray Data pipeline")
    p.add_argument(
        "--ray-address", default=None, help="Ray cluster to join, e.g. ray://HEAD:10001 (default: local Ray)"
    )
    p.add_argument("--gallery", type=Path, default=None, help=GALLERY_HELP)
    add_threads(p)


def add_geotag(commands) -> None:
    p = command(commands, "geotag", "landmark_lib.geotag.command:run", GEOTAG_SUMMARY, GEOTAG_DESCRIPTION)
    p.add_argument("library", type=existing_dir, help="folder of photos (searched recursively); never modified")
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument(
        "--threshold", type=threshold_arg, default=None, help="the confident level's threshold (default: export.json's)"
    )
    p.add_argument("--gallery", type=Path, default=None, help=GALLERY_HELP)
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
    from ..geotag.spread import window_seconds

    try:
        window_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text
