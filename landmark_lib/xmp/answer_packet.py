"""The XMP packet of one answer, for the REST API (`POST /v1/tag?format=xmp`): what `landmark geotag` would write
into a new sidecar for that photo, so a photo service can store it without reimplementing the mapping."""

from __future__ import annotations

from ..artifacts.answer import Prediction
from . import packet
from .fields import Provenance, now
from .levels import CONFIDENT, level_of, place_of


def answer_packet(prediction: Prediction, photo_name: str) -> bytes | None:
    """The sidecar for PHOTO_NAME, or None when the answer places nothing (no confident landmark with coordinates,
    or the photo has its own GPS)."""
    place = place_of(prediction)
    if level_of(prediction) != CONFIDENT or place is None or prediction.photo_location is not None:
        return None
    model = prediction.model
    provenance = Provenance(
        model.id if model else "", (model.revision or "") if model else "", prediction.best.probability,
        CONFIDENT, now(), photo_name,
    )  # fmt: skip
    return packet.merge(None, place, provenance)
