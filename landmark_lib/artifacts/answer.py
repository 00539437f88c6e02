"""The one answer for a photo, whichever surface asks (the page, the Gradio API, REST, the batch tagger): the best
landmark and whether it is recognised, the five closest ones, where the best one is, where the photo was taken and
which model said so. `to_dict()` is the JSON every API returns (ANSWER_SCHEMA, tested), so a client sees one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..labels import ClassInfo, map_url
from ..recognition import OperatingPoints
from .model_identity import ModelIdentity


@dataclass(frozen=True)
class Guess:
    name: str
    display_name: str
    probability: float

    def to_dict(self) -> dict:
        return {"name": self.name, "display_name": self.display_name, "probability": self.probability}


@dataclass(frozen=True)
class ModelId:
    """Which model answered: ID (a Hub repository, else the export folder's name), REVISION (the Hub commit, else the
    served file's sha256 prefix: two answers with one revision came from the same weights) and the BACKEND."""

    id: str
    revision: str | None
    backend: str

    def to_dict(self) -> dict:
        return {"id": self.id, "revision": self.revision, "backend": self.backend}


def model_id(identity: ModelIdentity, backend: str) -> ModelId:
    """What an answer says about the model: IDENTITY's name and revision (computed once at load), and the BACKEND."""
    return ModelId(identity.name, identity.revision, backend)


def place_dict(landmark: ClassInfo) -> dict:
    """Where LANDMARK is: city, country, lat, lon and an OpenStreetMap link (None where unknown)."""
    return {
        "city": landmark.city or None,
        "country": landmark.country or None,
        "lat": landmark.lat,
        "lon": landmark.lon,
        "map_url": landmark.map_url,
    }


@dataclass(frozen=True)
class Prediction:
    """The answer for one photo: the five closest landmarks, the best one's metadata (where it is), where the photo was
    taken (validated EXIF GPS), the recognition SCORE and the LEVEL it reaches ('confident': a library may write it;
    'suggested': "maybe", for review; None: "no known landmark") under the served operating POINTS, and the model."""

    top: list[Guess]
    landmark: ClassInfo
    photo_location: tuple[float, float] | None
    level: str | None
    score: float
    points: OperatingPoints
    model: ModelId | None = None

    @property
    def best(self) -> Guess:
        return self.top[0]

    @property
    def recognised(self) -> bool:
        """Named with confidence: what a library may write without asking."""
        return self.level == "confident"

    @property
    def threshold(self) -> float:
        return self.points.confident

    def to_dict(self) -> dict:
        """The JSON answer (ANSWER_SCHEMA). Below both operating points it names no landmark and no place: the
        closest landmarks are only in `top5`, marked "closest"."""
        gps, named = self.photo_location, self.level is not None
        return {
            "landmark": self.best.name if named else None,
            "display_name": self.best.display_name if named else None,
            "probability": self.best.probability,
            "score": self.score,
            "level": self.level or "none",
            "recognised": self.recognised,
            "threshold": self.points.confident,
            "operating_points": {
                "score": self.points.score,
                "confident": self.points.confident,
                "suggested": self.points.suggested,
            },
            "top5": [
                {**g.to_dict(), "match": self.level if i == 0 and named else "closest"} for i, g in enumerate(self.top)
            ],
            "place": place_dict(self.landmark) if named else None,
            "photo_gps": None if gps is None else {"lat": gps[0], "lon": gps[1], "map_url": map_url(*gps)},
            "model": None if self.model is None else self.model.to_dict(),
        }


_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_GUESS = {
    "type": "object",
    "required": ["name", "display_name", "probability", "match"],
    "properties": {
        "name": {"type": "string"},
        "display_name": {"type": "string"},
        "probability": _NUMBER,
        "match": {"enum": ["confident", "suggested", "closest"]},
    },
}
# The JSON Schema of Prediction.to_dict(): the contract of the REST and Gradio APIs (tests check answers against it).
ANSWER_SCHEMA = {
    "title": "Answer",
    "type": "object",
    "required": [
        "landmark",
        "display_name",
        "probability",
        "score",
        "level",
        "recognised",
        "threshold",
        "operating_points",
        "top5",
        "place",
        "photo_gps",
        "model",
    ],
    "properties": {
        "landmark": {**_NULLABLE_STRING, "description": "the landmark named (confident or suggested), else null"},
        "display_name": _NULLABLE_STRING,
        "probability": {**_NUMBER, "description": "the closest landmark's probability"},
        "score": {**_NUMBER, "description": "the recognition score the operating points apply to"},
        "level": {
            "enum": ["confident", "suggested", "none"],
            "description": "confident: write it without asking; suggested: 'maybe', review first; none: no known landmark",
        },
        "recognised": {"type": "boolean", "description": "level == confident"},
        "threshold": {**_NUMBER, "description": "the confident operating point"},
        "operating_points": {
            "type": "object",
            "required": ["score", "confident", "suggested"],
            "properties": {"score": {"type": "string"}, "confident": _NUMBER, "suggested": _NULLABLE_NUMBER},
        },
        "top5": {"type": "array", "items": _GUESS, "maxItems": 5},
        "place": {
            "type": ["object", "null"],
            "description": "where the named landmark is (null when no landmark is named)",
            "required": ["city", "country", "lat", "lon", "map_url"],
            "properties": {
                "city": _NULLABLE_STRING,
                "country": _NULLABLE_STRING,
                "lat": _NULLABLE_NUMBER,
                "lon": _NULLABLE_NUMBER,
                "map_url": _NULLABLE_STRING,
            },
        },
        "photo_gps": {
            "type": ["object", "null"],
            "description": "where the photo was taken (its EXIF GPS, validated), if it says",
            "required": ["lat", "lon", "map_url"],
            "properties": {"lat": _NUMBER, "lon": _NUMBER, "map_url": {"type": "string"}},
        },
        "model": {
            "type": ["object", "null"],
            "required": ["id", "revision", "backend"],
            "properties": {"id": {"type": "string"}, "revision": _NULLABLE_STRING, "backend": {"type": "string"}},
        },
    },
}
