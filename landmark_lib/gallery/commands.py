"""`landmark gallery add | list | remove`: the commands (their options: cli/gallery.py; `evaluate` is
research/gallery_study.py)."""

from __future__ import annotations

import argparse

from ..labels import plural


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
