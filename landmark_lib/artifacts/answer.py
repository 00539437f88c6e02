"""The one answer for a photo, whichever surface asks (the page, the Gradio API, REST, the batch tagger): the best
landmark and whether it is recognised, the five closest ones, where the best one is, where the photo was taken and
which model said so. `to_dict()` is the JSON every API returns (ANSWER_SCHEMA, tested), so a client sees one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..labels import ClassInfo, map_url
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
    taken (validated EXIF GPS), whether it is recognised (the best landmark's probability reaches the threshold; else
    "no known landmark") and the model that answered."""

    top: list[Guess]
    landmark: ClassInfo
    photo_location: tuple[float, float] | None
    recognised: bool
    threshold: float
    model: ModelId | None = None

    @property
    def best(self) -> Guess:
        return self.top[0]

    def to_dict(self) -> dict:
        """The JSON answer (ANSWER_SCHEMA). `landmark` is the closest landmark even when not recognised: clients
        name it only when `recognised` is true."""
        gps = self.photo_location
        return {
            "landmark": self.best.name,
            "display_name": self.best.display_name,
            "probability": self.best.probability,
            "recognised": self.recognised,
            "threshold": self.threshold,
            "top5": [g.to_dict() for g in self.top],
            "place": place_dict(self.landmark),
            "photo_gps": None if gps is None else {"lat": gps[0], "lon": gps[1], "map_url": map_url(*gps)},
            "model": None if self.model is None else self.model.to_dict(),
        }


_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_GUESS = {
    "type": "object",
    "required": ["name", "display_name", "probability"],
    "properties": {"name": {"type": "string"}, "display_name": {"type": "string"}, "probability": _NUMBER},
}
# The JSON Schema of Prediction.to_dict(): the contract of the REST and Gradio APIs (tests check answers against it).
ANSWER_SCHEMA = {
    "title": "Answer",
    "type": "object",
    "required": [
        "landmark",
        "display_name",
        "probability",
        "recognised",
        "threshold",
        "top5",
        "place",
        "photo_gps",
        "model",
    ],
    "properties": {
        "landmark": {"type": "string", "description": "the closest landmark's name (named only when recognised)"},
        "display_name": {"type": "string"},
        "probability": {**_NUMBER, "description": "the closest landmark's probability"},
        "recognised": {"type": "boolean", "description": "probability >= threshold"},
        "threshold": _NUMBER,
        "top5": {"type": "array", "items": _GUESS, "maxItems": 5},
        "place": {
            "type": "object",
            "description": "where the closest landmark is",
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
