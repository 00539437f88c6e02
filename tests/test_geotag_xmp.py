"""XMP sidecars as ExifTool reads them (the reader Immich and PhotoPrism use): our coordinates in its own form, our
keywords and location fields, merges into digiKam and darktable sidecars that keep every field, and the exact
removal of what we wrote."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from landmark_lib.xmp import document as xmp
from landmark_lib.xmp import packet
from landmark_lib.xmp.fields import Place, Provenance, coordinate

from helpers import exiftool

pytestmark = pytest.mark.skipif(
    shutil.which("exiftool") is None, reason="exiftool is not installed (scripts/setup.sh installs it)"
)
FIXTURES = Path(__file__).parent / "fixtures" / "xmp"
PLACES = [
    Place("Christ the Redeemer", "Rio de Janeiro", "Brazil", -22.951916, -43.210487),
    Place("Machu Picchu", "Aguas Calientes", "Peru", -13.163141, -72.544963),
    Place("Statue of Liberty", "New York", "United States", 40.689247, -74.044502),
    Place("Borobudur", "Magelang", "Indonesia", -7.607874, 110.203751),
    Place("Hạ Long Bay", "Hạ Long", "Việt Nam", 20.910051, 107.183902),
    Place("Ayasofya", "İstanbul", "Türkiye", 41.008583, 28.980175),
    Place("Torre dos Clérigos", "Porto", "Portugal", 41.145682, -8.614638),
]
PROVENANCE = Provenance("default", "sha256:0123456789ab", 0.97, "confident", "2026-12-03T10:00:00Z", "IMG_1.jpg")
FILE_TAGS = re.compile(r"^(SourceFile|File|Directory|ExifToolVersion|Warning)")


def read(data: bytes, tmp_path: Path, name: str = "IMG_1.jpg.xmp") -> dict:
    (tmp_path / name).write_bytes(data)
    return {k: v for k, v in exiftool(tmp_path / name)[0].items() if not FILE_TAGS.match(k)}


def exiftool_writes(lat: float, lon: float, tmp_path: Path) -> tuple[str, str]:
    """The GPSLatitude and GPSLongitude values ExifTool itself writes into an XMP sidecar."""
    out = tmp_path / "by_exiftool.xmp"
    out.unlink(missing_ok=True)
    subprocess.run(
        ["exiftool", "-q", "-o", str(out), f"-XMP-exif:GPSLatitude={lat}", f"-XMP-exif:GPSLongitude={lon}"], check=True
    )
    text = out.read_text(encoding="utf-8")
    return tuple(re.search(f"<exif:{tag}>([^<]+)<", text).group(1) for tag in ("GPSLatitude", "GPSLongitude"))


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.landmark)
def test_exiftool_reads_back_the_place_in_both_hemispheres(place: Place, tmp_path: Path) -> None:
    assert (coordinate(place.lat, "NS"), coordinate(place.lon, "EW")) == exiftool_writes(place.lat, place.lon, tmp_path)
    got = read(packet.merge(None, place, PROVENANCE), tmp_path)
    assert abs(got["GPSLatitude"] - place.lat) < 1e-6 and abs(got["GPSLongitude"] - place.lon) < 1e-6
    assert got["Subject"] == [place.landmark, place.city, place.country]
    assert got["HierarchicalSubject"] == f"Places|{place.country}|{place.city}|{place.landmark}"
    assert got["TagsList"] == f"Places/{place.country}/{place.city}/{place.landmark}"
    assert (got["City"], got["Country"], got["Location"]) == (place.city, place.country, place.landmark)
    assert (got["LocationShownSublocation"], got["LocationShownCity"]) == (place.landmark, place.city)
    assert abs(got["LocationShownGPSLongitude"] - place.lon) < 1e-6
    assert (got["GeotagLevel"], got["GeotagModelRevision"], got["GeotagPhoto"]) == (
        "confident",
        "sha256:0123456789ab",
        "IMG_1.jpg",
    )
    assert "Model" not in got  # our provenance is named Geotag*: nothing reads as the camera model


def test_markup_in_names_is_escaped(tmp_path: Path) -> None:
    place = Place('Café "<Ü>" & Co', "A&B", "Ö<", 1.5, -2.25)
    got = read(packet.merge(None, place, PROVENANCE), tmp_path)
    assert got["Location"] == 'Café "<Ü>" & Co' and got["City"] == "A&B" and got["Country"] == "Ö<"


@pytest.mark.parametrize("fixture", ["digikam.xmp", "darktable.xmp"])
def test_merge_keeps_every_field_and_undo_gives_the_original_bytes(fixture: str, tmp_path: Path) -> None:
    original = (FIXTURES / fixture).read_bytes()
    before = read(original, tmp_path, "before.xmp")
    merged = packet.merge(original, PLACES[1], PROVENANCE)
    after = read(merged, tmp_path)
    for name, value in before.items():
        if isinstance(value, list) or name in ("Subject", "HierarchicalSubject", "TagsList"):
            old = value if isinstance(value, list) else [value]
            assert after[name][: len(old)] == old, f"{name} lost items"
        else:
            assert after[name] == value, f"{name} changed"
    assert abs(after["GPSLatitude"] - PLACES[1].lat) < 1e-6 and "Machu Picchu" in after["Subject"]
    assert "Places|Peru|Aguas Calientes|Machu Picchu" in after["HierarchicalSubject"]
    assert packet.remove_ours(merged) == original
    assert packet.remove_ours(packet.merge(merged, PLACES[3], PROVENANCE)) == original  # a rerun replaces ours


def test_existing_keywords_are_not_doubled_and_stay_on_undo(tmp_path: Path) -> None:
    original = (FIXTURES / "digikam.xmp").read_bytes().replace(b"<rdf:li>Peru 2023</rdf:li>", b"<rdf:li>Peru</rdf:li>")
    merged = packet.merge(original, PLACES[1], PROVENANCE)
    assert read(merged, tmp_path)["Subject"] == ["Family", "Peru", "Machu Picchu", "Aguas Calientes"]
    assert packet.remove_ours(merged) == original


def test_force_replaces_a_user_gps_and_undo_restores_it(tmp_path: Path) -> None:
    original = (
        (FIXTURES / "darktable.xmp")
        .read_bytes()
        .replace(
            b'xmp:Rating="1"', b'xmp:Rating="1"\n   exif:GPSLatitude="48,51.504N"\n   exif:GPSLongitude="2,17.67E"'
        )
    )
    assert packet.user_gps(original)
    forced = packet.merge(original, PLACES[0], PROVENANCE, force=True)
    got = read(forced, tmp_path)
    assert abs(got["GPSLatitude"] - PLACES[0].lat) < 1e-6 and abs(got["GPSLongitude"] - PLACES[0].lon) < 1e-6
    assert packet.remove_ours(forced) == original
    assert not packet.user_gps(packet.merge(None, PLACES[0], PROVENANCE))  # our own GPS is not the user's


def test_a_sidecar_we_created_goes_on_undo_unless_another_program_added_to_it() -> None:
    created = packet.merge(None, PLACES[2], PROVENANCE)
    assert packet.remove_ours(created) is None
    rated = created.replace(
        b'<rdf:Description rdf:about=""',
        b'<rdf:Description rdf:about="" xmp:Rating="5" xmlns:xmp="http://ns.adobe.com/xap/1.0/"',
        1,
    )
    left = packet.remove_ours(rated)
    assert (
        left is not None
        and b'xmp:Rating="5"' in left
        and b"GPSLatitude" not in left
        and b"<landmarkTagger:" not in left
    )


HOSTILE = {
    "entity expansion": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>',
    "external entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
    "dtd": b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
    "malformed": (FIXTURES / "digikam.xmp").read_bytes()[:700],
    "not rdf": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><p>hello</p></x:xmpmeta>",
    "utf-16": "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".encode("utf-16"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_or_broken_sidecars_are_refused(name: str) -> None:
    with pytest.raises(xmp.NotXmp):
        packet.merge(HOSTILE[name], PLACES[0], PROVENANCE)
