"""Serving with a gallery (`--gallery DIR`, $LANDMARK_GALLERY): its landmarks rank beside the model's classes."""

from __future__ import annotations

import os
from pathlib import Path


def open_gallery(service, folder: str | os.PathLike | None):
    """The GalleryRanker for FOLDER, checked against SERVICE's model (another model's gallery is an error); None
    without a folder. The gallery's similarity rule maps onto the service's threshold (gallery/ranking.py)."""
    if not folder:
        return None
    from ..gallery import enroll, store
    from ..gallery.ranking import GalleryRanker

    gallery = store.load(Path(folder), enroll.model_id(service))
    return GalleryRanker(gallery, service.threshold)
