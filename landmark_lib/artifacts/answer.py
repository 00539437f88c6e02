"""The one answer for a photo, whichever surface asks (the page, the Gradio API, REST, the batch tagger): the best
landmark and the level it reaches, the five closest ones, where the best one is, where the photo was taken and which
model said so.

`Answer` (pydantic) is the wire format, defined once: its JSON is what every API returns, its JSON schema is the
contract (ANSWER_SCHEMA, the REST response model), and `Answer.columns()` is the tagger's flattened row (CSV and
Parquet columns). `Prediction` is the service's own result, with the landmark's full metadata; `answer()` turns it
into the wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..labels import ClassInfo, map_url
from ..recognition import OperatingPoints
from .model_identity import ModelIdentity

Level = Literal["confident", "suggested", "none"]
NO_LANDMARK = "no known landmark"  # the tagger's landmark column below both operating points (never a place)
TOP_K = 5


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelId(_Wire):
    """Which model answered: ID (a Hub repository, else the export folder's name), REVISION (the Hub commit, else the
    served file's sha256 prefix: two answers with one revision came from the same weights) and the BACKEND."""

    id: str
    revision: str | None
    backend: str


class RankedLandmark(_Wire):
    name: str
    display_name: str
    probability: float
    match: Literal["confident", "suggested", "closest"] = Field(
        description="the named landmark's level, or 'closest' for the others and for every entry of an unnamed photo"
    )


class Place(_Wire):
    """Where the named landmark is (OpenStreetMap link)."""

    city: str | None
    country: str | None
    lat: float | None
    lon: float | None
    map_url: str | None


class PhotoGps(_Wire):
    """Where the photo was taken: its EXIF GPS, validated."""

    lat: float
    lon: float
    map_url: str


class AnswerPoints(_Wire):
    """The served operating points and the recognition score they apply to."""

    score: str
    confident: float
    suggested: float | None


class Answer(_Wire):
    """The JSON answer for one photo. Below both operating points it names no landmark and no place: the closest
    landmarks are only in `top5`, marked "closest"."""

    model_config = ConfigDict(title="Answer")

    landmark: str | None = Field(description="the landmark named (confident or suggested), else null")
    display_name: str | None
    probability: float = Field(description="the closest landmark's probability")
    score: float = Field(description="the recognition score the operating points apply to")
    level: Level = Field(
        description="confident: write it without asking; suggested: 'maybe', review first; none: no known landmark"
    )
    recognised: bool = Field(description="level == confident")
    threshold: float = Field(description="the confident operating point")
    operating_points: AnswerPoints
    top5: list[RankedLandmark] = Field(max_length=TOP_K)
    place: Place | None = Field(description="where the named landmark is (null when no landmark is named)")
    photo_gps: PhotoGps | None = Field(description="where the photo was taken (its EXIF GPS, validated), if it says")
    model: ModelId | None

    def columns(self) -> dict[str, object]:
        """The tagger's flattened row (COLUMNS): one column per scalar, the top 5 and the place spread over columns."""
        return {name: value(self) for name, _, value in COLUMNS}


def _top(i: int, field: str) -> Callable[[Answer], object]:
    return lambda a: getattr(a.top5[i], field) if i < len(a.top5) else None


# The tagger's flattened row (CSV and Parquet columns, JSONL keys): (column, type, value of an Answer). Below both
# operating points `landmark` is NO_LANDMARK and the place columns are empty.
COLUMNS: tuple[tuple[str, type, Callable[[Answer], object]], ...] = (
    ("landmark", str, lambda a: a.display_name if a.landmark is not None else NO_LANDMARK),
    ("probability", float, lambda a: a.probability),
    ("score", float, lambda a: a.score),
    ("level", str, lambda a: a.level),
    ("review", bool, lambda a: a.level == "suggested"),
    ("recognised", bool, lambda a: a.recognised),
    ("closest_landmark", str, lambda a: a.top5[0].display_name if a.top5 else None),
    *(
        column
        for i in range(TOP_K)
        for column in (
            (f"top{i + 1}", str, _top(i, "display_name")),
            (f"top{i + 1}_probability", float, _top(i, "probability")),
        )
    ),
    ("city", str, lambda a: a.place and a.place.city),
    ("country", str, lambda a: a.place and a.place.country),
    ("lat", float, lambda a: a.place and a.place.lat),
    ("lon", float, lambda a: a.place and a.place.lon),
    ("map_url", str, lambda a: a.place and a.place.map_url),
    ("photo_lat", float, lambda a: a.photo_gps and a.photo_gps.lat),
    ("photo_lon", float, lambda a: a.photo_gps and a.photo_gps.lon),
)


@dataclass(frozen=True)
class Guess:
    """One of a photo's closest landmarks, as the service ranks them."""

    name: str
    display_name: str
    probability: float


def model_id(identity: ModelIdentity, backend: str) -> ModelId:
    """What an answer says about the model: IDENTITY's name and revision (computed once at load), and the BACKEND."""
    return ModelId(id=identity.name, revision=identity.revision, backend=backend)


def place_of(landmark: ClassInfo) -> Place:
    """Where LANDMARK is: city, country, lat, lon and an OpenStreetMap link (None where unknown)."""
    return Place(
        city=landmark.city or None,
        country=landmark.country or None,
        lat=landmark.lat,
        lon=landmark.lon,
        map_url=landmark.map_url,
    )


@dataclass(frozen=True)
class Prediction:
    """The service's result for one photo: the five closest landmarks, the best one's metadata (where it is), where
    the photo was taken (validated EXIF GPS), the recognition SCORE and the LEVEL it reaches ('confident': a library
    may write it; 'suggested': "maybe", for review; None: "no known landmark") under the served operating POINTS,
    and the model."""

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

    def answer(self) -> Answer:
        """The wire answer: below both operating points no landmark and no place, only the closest in top5."""
        gps, named = self.photo_location, self.level is not None
        top5 = [
            RankedLandmark(
                name=g.name,
                display_name=g.display_name,
                probability=g.probability,
                match=self.level if i == 0 and self.level is not None else "closest",  # type: ignore[arg-type]
            )
            for i, g in enumerate(self.top)
        ]
        return Answer(
            landmark=self.best.name if named else None,
            display_name=self.best.display_name if named else None,
            probability=self.best.probability,
            score=self.score,
            level=self.level or "none",  # type: ignore[arg-type]
            recognised=self.recognised,
            threshold=self.points.confident,
            operating_points=AnswerPoints(
                score=self.points.score, confident=self.points.confident, suggested=self.points.suggested
            ),
            top5=top5,
            place=place_of(self.landmark) if named else None,
            photo_gps=None if gps is None else PhotoGps(lat=gps[0], lon=gps[1], map_url=map_url(*gps)),
            model=self.model,
        )

    def to_dict(self) -> dict:
        """The JSON answer (ANSWER_SCHEMA)."""
        return self.answer().model_dump(mode="json")


# The JSON Schema of Answer: the contract of the REST and Gradio APIs (tests check answers against it).
ANSWER_SCHEMA = Answer.model_json_schema()
