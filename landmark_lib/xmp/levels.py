"""Which answers may put a photo on the map: the one place that turns an answer into an operating point.

`confident` answers are written straight into sidecars; `suggested` ones only through the review (--review, then
--apply); anything else places nothing. Until the answer carries its own operating points, `confident` is the served
threshold (the answer's `recognised`) and nothing is `suggested`.
"""

from __future__ import annotations

import math

from ..artifacts.answer import Prediction
from .fields import Place

CONFIDENT, SUGGESTED = "confident", "suggested"


def level_of(prediction: Prediction) -> str | None:
    """'confident', 'suggested' or None (no landmark to place the photo by)."""
    return CONFIDENT if prediction.recognised else None


def place_of(prediction: Prediction) -> Place | None:
    """Where the answer's landmark stands, or None when its coordinates are unknown (nothing to write)."""
    landmark = prediction.landmark
    if landmark.lat is None or landmark.lon is None or not math.isfinite(landmark.lat + landmark.lon):
        return None
    return Place(landmark.display_name, landmark.city, landmark.country, landmark.lat, landmark.lon)
