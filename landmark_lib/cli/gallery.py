"""The options of `landmark gallery add | list | remove | evaluate` (teaching landmarks from a few photos)."""

from __future__ import annotations

from pathlib import Path

from ..cli_args import add_threads
from .command import BACKEND_HELP, SPEC_HELP, command, subcommands


def add_gallery(parent) -> None:
    """`landmark gallery add | list | remove | evaluate`."""
    commands = subcommands(parent, "gallery", "teach landmarks from a few photos, without retraining")
    p = command(
        commands, "add", "landmark_lib.gallery.commands:run_add", "teach a landmark from photos (no retraining)"
    )
    p.add_argument("gallery", type=Path, help="gallery folder (created if missing)")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO_OR_FOLDER", help="photos of the landmark")
    p.add_argument("--name", required=True, help="the landmark's id, e.g. eiffel_tower")
    p.add_argument("--display-name", help="the name shown in answers (default: from --name)")
    p.add_argument("--city", default="", help="where it is")
    p.add_argument("--country", default="", help="where it is")
    p.add_argument("--lat", type=float, help="latitude (default: unknown)")
    p.add_argument("--lon", type=float, help="longitude (default: unknown)")
    p.add_argument("--replace", action="store_true", help="teach a landmark the gallery already has again")
    p.add_argument(
        "--similarity",
        type=float,
        help="cosine a photo must reach to be recognised as a gallery landmark (default: the gallery's, else 0.63: reports/gallery.md)",
    )
    p.add_argument("--model", default=None, help="the served model: " + SPEC_HELP)
    p.add_argument("--backend", default="auto", help=BACKEND_HELP)
    add_threads(p)
    p = command(commands, "list", "landmark_lib.gallery.commands:run_list", "the landmarks a gallery knows")
    p.add_argument("gallery", type=Path, help="gallery folder")
    p = command(commands, "remove", "landmark_lib.gallery.commands:run_remove", "forget a taught landmark")
    p.add_argument("gallery", type=Path, help="gallery folder")
    p.add_argument("name", help="the landmark's --name")
    p = command(
        commands,
        "evaluate",
        "landmark_lib.research.gallery_study:run",
        "the teach-from-n-photos protocol on a model trained with --holdout-classes",
    )
    p.add_argument("export", type=Path, help="export folder of a run trained with --holdout-classes")
    p.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5, 10, 20], help="photos enrolled per landmark")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json and top1_vs_n.png")
    p.add_argument(
        "--max-false-accept",
        type=float,
        default=0.01,
        help="share of validation photos of other things a gallery landmark may claim",
    )
    p.add_argument(
        "--known-photos", type=int, help="known-class test photos used, spread over the classes (default: all)"
    )
    p.add_argument("--backend", default="auto", help=BACKEND_HELP)
    add_threads(p)
