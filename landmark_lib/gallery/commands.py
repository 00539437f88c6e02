"""`landmark gallery add | list | remove | evaluate`: their options (light: built for every `landmark` call) and
the add/list/remove commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import add_threads
from ..labels import plural

SPEC_HELP = (
    "the served model: export folder, model.pt or hf://OWNER/NAME (default: $LANDMARK_MODEL, then models/default)"
)


def add_arguments(commands, command) -> None:
    """The gallery subcommands; COMMAND(commands, name, target, summary) makes one parser (cli._command)."""
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
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument("--backend", default="auto", help="auto, onnx-int8, onnx or torchscript")
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
    p.add_argument("--backend", default="auto", help="auto, onnx-int8, onnx or torchscript")
    add_threads(p)


def _model(args: argparse.Namespace):
    from ..runtime.loaded import load_model

    return load_model(args.model, backend=args.backend)


def run_add(args: argparse.Namespace) -> None:
    """Embed the photos with the served model and add them to the gallery (created for that model if new)."""
    import time

    from ..labels import ClassInfo, display_name
    from . import enroll, store

    start = time.time()
    loaded = _model(args)
    model = enroll.embedding_model(loaded)
    folder = args.gallery
    gallery = store.load(folder, model) if (folder / store.GALLERY_FILE).is_file() else store.new_gallery(folder, model)
    photos, embeddings = enroll.embed_files(loaded, enroll.photo_files(args.photos))
    info = ClassInfo(
        args.name, args.display_name or display_name(args.name), args.city, args.country, args.lat, args.lon
    )
    gallery.add(info, photos, embeddings, replace=args.replace)
    if args.similarity is not None:
        gallery.similarity = store.check_similarity(args.similarity)
    store.save(gallery)
    print(
        f"taught '{info.display_name}' from {plural(len(photos), 'photo')} in {time.time() - start:.1f} s; {folder} knows {plural(len(gallery.landmarks), 'landmark')}"
    )


def run_list(args: argparse.Namespace) -> None:
    from . import store

    gallery = store.load(args.gallery)
    print(
        f"{args.gallery}: {plural(len(gallery.landmarks), 'landmark')}, similarity rule {gallery.similarity}, model.pt sha256 {gallery.model.sha256[:12]}..."
    )
    for lm in gallery.landmarks:
        print(f"  {lm.info.name}\t{lm.info.display_name}\t{lm.info.place or '-'}\t{plural(len(lm.photos), 'photo')}")


def run_remove(args: argparse.Namespace) -> None:
    from . import store

    gallery = store.load(args.gallery)
    gallery.remove(args.name)
    store.save(gallery)
    print(f"removed '{args.name}'; {args.gallery} knows {plural(len(gallery.landmarks), 'landmark')}")
