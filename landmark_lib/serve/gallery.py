"""Serving with a gallery (`--gallery DIR`, $LANDMARK_GALLERY): its landmarks rank beside the model's classes."""

from __future__ import annotations

import os


def open_gallery(service, folder: str | os.PathLike | None):
    """The GalleryRanker for FOLDER, checked against SERVICE's model (another model's gallery, or a landmark named like
    one of its classes, is an error); None without a folder. The gallery's similarity rule maps onto the service's threshold (gallery/ranking.py)."""
    if not folder:
        return None
    from ..gallery import enroll, store
    from ..gallery.ranking import GalleryRanker

    gallery = store.load(folder, enroll.model_id(service))
    shared = sorted(set(gallery.names) & set(service.class_names))
    if shared:  # one name would stand for two entries of the ranking (and of every answer's top 5)
        raise store.GalleryError(
            f"{folder} teaches {', '.join(map(repr, shared))}, already a class of the model; remove it from the "
            "gallery (`landmark gallery remove`) and teach it under another --name."
        )
    return GalleryRanker(gallery, service.threshold)
