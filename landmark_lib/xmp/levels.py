"""Which answers may put a photo on the map: the one place that turns an answer into an operating point.

`confident` answers are written straight into sidecars; `suggested` ones only through the review (--review, then
--apply); anything else places nothing. The level is the answer's own (the export's operating points on the
recognition score; an export without a photo index has only `confident`, its probability threshold).
"""

from __future__ import annotations

import math

from ..artifacts.answer import Prediction
from .fields import Place

CONFIDENT, SUGGESTED = "confident", "suggested"


def level_of(prediction: Prediction) -> str | None:
    """'confident', 'suggested' or None (no landmark to place the photo by): the answer's own level, decided by the
    served operating points (recognition.OperatingPoints)."""
    return prediction.level


def place_of(prediction: Prediction) -> Place | None:
    """Where the answer's landmark stands, or None when its coordinates are unknown (nothing to write)."""
    landmark = prediction.landmark
    if landmark.lat is None or landmark.lon is None or not math.isfinite(landmark.lat + landmark.lon):
        return None
    return Place(landmark.display_name, landmark.city, landmark.country, landmark.lat, landmark.lon)
