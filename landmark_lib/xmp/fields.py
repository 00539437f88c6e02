"""What a sidecar says about a place, field by field, and who said it (the provenance in our namespace).

The position is the landmark's (where the thing in the photo stands), not the camera's. Coordinates use the XMP
GPSCoordinate form ExifTool writes, `DDD,MM.mmmmmmmmN`: the hemisphere letter is inside the value, because sidecars
with decimal values and separate Ref fields have put photos in the wrong hemisphere in Immich.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

ESTIMATE_KEYWORD = "Place estimated from a nearby photo"
LEVELS = ("confident", "suggested", "nearby")  # nearby: spread from a confidently placed photo of the same trip


@dataclass(frozen=True)
class Place:
    """Where a photo gets put: the landmark (its display name) with its city, country and coordinates."""

    landmark: str
    city: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Provenance:
    """Who placed the photo and how sure it was: recorded in the sidecar so reruns and --undo find what is ours."""

    model: str
    revision: str
    score: float
    level: str
    date: str
    photo: str  # the photo's file name (two photos can share a Lightroom-style sidecar name)
    source: str = ""  # for a nearby estimate: the photo it was spread from


def coordinate(value: float, hemispheres: str) -> str:
    """Signed decimal degrees -> 'DDD,MM.mmmmmmmmH' (ExifTool's XMP form: 8 decimals of minutes, zeros trimmed).

    HEMISPHERES: 'NS' or 'EW'. 1e-8 minutes is ~2e-10 degrees, far inside the 1e-6 degrees we promise."""
    if not math.isfinite(value):
        raise ValueError(f"not a coordinate: {value}")
    letter = hemispheres[1] if value < 0 else hemispheres[0]
    microminutes = round(abs(value) * 60 * 10**8)  # whole 1e-8 minutes: no '60.00000000' from rounding up
    degrees, rest = divmod(microminutes, 60 * 10**8)
    minutes = f"{rest // 10**8}.{rest % 10**8:08d}".rstrip("0").rstrip(".")
    return f"{degrees},{minutes}{letter}"


def _clean(name: str, separator: str) -> str:
    return name.replace(separator, " ").strip()


def keywords(place: Place, estimate: bool) -> dict[str, list[str]]:
    """dc:subject, lr:hierarchicalSubject (Places|Country|City|Landmark) and digiKam:TagsList (Places/...): a nearby
    estimate names no landmark (the photo does not show it) and carries its own keyword instead."""
    path = [p for p in (place.country, place.city, None if estimate else place.landmark) if p]
    flat = [p for p in ([] if estimate else [place.landmark]) + [place.city, place.country] if p]
    extra = [ESTIMATE_KEYWORD] if estimate else []
    return {
        "dc:subject": flat + extra,
        "lr:hierarchicalSubject": ["|".join(["Places", *(_clean(p, "|") for p in path)])] + extra,
        "digiKam:TagsList": ["/".join(["Places", *(_clean(p, "/") for p in path)])] + extra,
    }


def simple_fields(place: Place, estimate: bool) -> dict[str, str]:
    """The single-valued properties: GPS, city, country and (not for an estimate) the location shown."""
    values = {
        "exif:GPSLatitude": coordinate(place.lat, "NS"),
        "exif:GPSLongitude": coordinate(place.lon, "EW"),
        "photoshop:City": place.city,
        "photoshop:Country": place.country,
        "Iptc4xmpCore:Location": "" if estimate else place.landmark,
    }
    return {name: value for name, value in values.items() if value}


def location_shown(place: Place) -> dict[str, str]:
    """The Iptc4xmpExt:LocationShown entry: the landmark is what the photo shows, and where it stands."""
    values = {
        "Iptc4xmpExt:Sublocation": place.landmark,
        "Iptc4xmpExt:City": place.city,
        "Iptc4xmpExt:CountryName": place.country,
        "exif:GPSLatitude": coordinate(place.lat, "NS"),
        "exif:GPSLongitude": coordinate(place.lon, "EW"),
    }
    return {name: value for name, value in values.items() if value}


def provenance_fields(provenance: Provenance) -> dict[str, str]:
    """Our namespace's fields, all named Geotag*: ExifTool lists XMP tags by local name only, and a plain `Model`
    or `Date` would read as the camera model or a capture date in the libraries that use it."""
    values = {
        "landmarkTagger:GeotagModel": provenance.model,
        "landmarkTagger:GeotagModelRevision": provenance.revision,
        "landmarkTagger:GeotagScore": f"{provenance.score:.6f}",
        "landmarkTagger:GeotagLevel": provenance.level,
        "landmarkTagger:GeotagDate": provenance.date,
        "landmarkTagger:GeotagPhoto": provenance.photo,
        "landmarkTagger:GeotagEstimatedFrom": provenance.source,
    }
    return {name: value for name, value in values.items() if value}


def now() -> str:
    """The current UTC time as provenance records it ('2026-12-03T11:37:28Z')."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
