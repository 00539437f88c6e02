"""Which answers may put a photo on the map: the one place that turns an answer into an operating point.

`confident` answers are written straight into sidecars; `suggested` ones only through the review (--review, then
--apply); anything else places nothing. Until the answer carries its own operating points, `confident` is the served
threshold (the answer's `recognised`) and nothing is `suggested`.
"""

from __future__ import annotations

from ..serve.answer import Prediction

CONFIDENT, SUGGESTED = "confident", "suggested"


def level_of(prediction: Prediction) -> str | None:
    """'confident', 'suggested' or None (no landmark to place the photo by)."""
    return CONFIDENT if prediction.recognised else None
