"""Same trip, same place: a photo with no GPS and no recognised landmark, taken within the window of a confidently
placed photo in the same folder, gets that photo's place as an estimate (`nearby` level, its own keyword).

Only photos placed by their own landmark are sources, so an estimate never spreads further (no chaining), and a
photo with a real GPS (EXIF or sidecar) is never a target. Times are EXIF DateTimeOriginal, compared within one
folder (one camera's clock, one trip); the nearest source in time wins, the earlier one on a tie.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import PurePosixPath

from ..xmp.levels import CONFIDENT
from .library import PLACED

_WINDOW = re.compile(r"^(\d+)([smh])$")


def window_seconds(text: str) -> int:
    """'30m' -> 1800 ('45s', '2h' too); ValueError for anything else."""
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"a time window like 30m, 45s or 2h, got {text!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def _source(record: dict) -> bool:
    return record["level"] == CONFIDENT and record["action"] in PLACED and bool(record["taken"] and record["place"])


def _target(record: dict) -> bool:
    return record["action"] == "no landmark" and record["gps"] is None and bool(record["taken"])


def estimates(records: Iterable[dict], window_s: int) -> Iterator[tuple[dict, dict]]:
    """(target, source) pairs: each target with the confidently placed photo of its folder nearest in time, if that
    is within WINDOW_S seconds (inclusive)."""
    folders: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for record in records:
        folder = str(PurePosixPath(record["path"]).parent)
        if _source(record):
            folders[folder][0].append(record)
        elif _target(record):
            folders[folder][1].append(record)
    for sources, targets in folders.values():
        if not sources:
            continue
        times = [(datetime.fromisoformat(s["taken"]), s["path"], s) for s in sources]
        for target in targets:
            taken = datetime.fromisoformat(target["taken"])
            when, _, source = min(times, key=lambda s: (abs((s[0] - taken).total_seconds()), s[0], s[1]))
            if abs((when - taken).total_seconds()) <= window_s:
                yield target, source
