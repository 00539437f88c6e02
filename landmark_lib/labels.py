"""Class metadata: one type (ClassInfo) for a landmark's names and place, read from folder names, a dataset's
classes.json or an export's labels.json, and carried by exported models as plain lists (TorchScript attributes)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from . import atomic

BACKGROUND_CLASS = "no_landmark"  # a class folder of everyday photos: trained on, never shown as a landmark


def display_name(folder: str) -> str:
    """'00.Haleakala_National_Park' -> 'Haleakala National Park'; 'taj_mahal' -> 'Taj Mahal'."""
    name = re.sub(r"^\d+\.", "", folder).replace("_", " ").strip()
    return name if any(c.isupper() for c in name) else name.title()


def map_url(lat: float, lon: float, zoom: int = 15) -> str:
    return f"https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}#map={zoom}/{lat:.5f}/{lon:.5f}"


@dataclass(frozen=True)
class ClassInfo:
    """What a user sees for a class: its display name and where it is (coordinates may be unknown)."""

    name: str
    display_name: str
    city: str = ""
    country: str = ""
    lat: float | None = None
    lon: float | None = None

    @property
    def place(self) -> str:
        """'Agra, India' (the parts that are known)."""
        return ", ".join(p for p in (self.city, self.country) if p)

    @property
    def map_url(self) -> str | None:
        return None if self.lat is None or self.lon is None else map_url(self.lat, self.lon)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: dict, name: str | None = None) -> ClassInfo:
        """An entry of labels.json or classes.json; missing fields get the defaults (display name from the folder)."""
        name = name or entry["name"]
        return cls(
            name=name,
            display_name=entry.get("display_name") or display_name(name),
            city=entry.get("city") or "",
            country=entry.get("country") or "",
            lat=entry.get("lat"),
            lon=entry.get("lon"),
        )


def read_labels(path: str | Path) -> list[ClassInfo]:
    """labels.json: the classes of an export, in output order."""
    return [ClassInfo.from_dict(entry) for entry in json.loads(Path(path).read_text(encoding="utf-8"))]


def write_labels(path: str | Path, classes: list[ClassInfo]) -> None:
    atomic.write_text(Path(path), json.dumps([c.to_dict() for c in classes], indent=2, ensure_ascii=False))


class Columns(NamedTuple):
    """The classes as parallel lists, the form a TorchScript module can carry as attributes (NaN: no coordinate)."""

    class_names: list[str]
    display_names: list[str]
    cities: list[str]
    countries: list[str]
    latitudes: list[float]
    longitudes: list[float]


def to_columns(classes: list[ClassInfo]) -> Columns:
    nan = float("nan")
    return Columns(
        [c.name for c in classes],
        [c.display_name for c in classes],
        [c.city for c in classes],
        [c.country for c in classes],
        [nan if c.lat is None else float(c.lat) for c in classes],
        [nan if c.lon is None else float(c.lon) for c in classes],
    )


def from_columns(model: object) -> list[ClassInfo]:
    """The classes a loaded model carries as Columns attributes (TorchScript model.pt or an ONNX predictor)."""
    rows = zip(*(getattr(model, field) for field in Columns._fields))
    return [
        ClassInfo(name, display, city, country, None if math.isnan(lat) else lat, None if math.isnan(lon) else lon)
        for name, display, city, country, lat, lon in rows
    ]


def entry_problem(entry: object) -> str | None:
    """Why ENTRY (of classes.json, labels.json or a gallery) cannot be a ClassInfo, as the end of a sentence, or None.

    A string latitude or a number as display name would otherwise fail later (an answer's 500, an export) or put a
    landmark at the wrong place on the map.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        return f'every entry needs a "name" (text), got {entry!r:.80}'
    for key in ("display_name", "city", "country"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            return f'"{key}" of {entry["name"]!r} must be text, got {entry[key]!r:.40}'
    for key, limit in (("lat", 90), ("lon", 180)):
        value = entry.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or abs(value) > limit
        ):
            return (
                f'"{key}" of {entry["name"]!r} must be a number of degrees within +-{limit} or null, got {value!r:.40}'
            )
    return None


def plural(count: int, noun: str) -> str:
    """'1 landmark', '2 landmarks': counts of landmarks and photos in messages."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
