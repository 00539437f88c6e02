"""Where a photo's sidecar is, and reading and writing it without ever touching the photo.

`IMG_1.JPG.xmp` beside the photo by default (Immich, digiKam, darktable), `IMG_1.xmp` with --sidecar-name basename
(Lightroom), or the same relative path under --sidecar-dir (for a read-only library). Writes are atomic (temp file +
rename in the same folder): a kill leaves the old sidecar or the new one, never a torn one.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .. import atomic
from ..tagging.photo_walk import walk_photos
from ..xmp import document as xmp
from ..xmp import packet
from ..xmp.fields import Place, Provenance

MAX_SIDECAR_BYTES = 8 * 2**20  # far above any real sidecar (a darktable history is tens of kB)
LEFTOVER = re.compile(r"^\..+\.xmp\.\d+\.[0-9a-f]{8}\.tmp$")  # atomic.atomic_path's temp name for a sidecar


def sidecar_path(photo: Path, library: Path, basename: bool = False, sidecar_dir: Path | None = None) -> Path:
    """PHOTO's sidecar: PHOTO.EXT.xmp, or PHOTO.xmp with BASENAME, under SIDECAR_DIR mirroring LIBRARY if given."""
    name = f"{photo.stem}.xmp" if basename else f"{photo.name}.xmp"
    folder = photo.parent if sidecar_dir is None else sidecar_dir / photo.parent.relative_to(library)
    return folder / name


def read(path: Path) -> bytes | None:
    """The sidecar's bytes, or None when there is none; NotXmp when it is too large to be one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > MAX_SIDECAR_BYTES:
        raise xmp.NotXmp(f"it is {size // 2**20} MB, larger than any sidecar")
    return path.read_bytes()


def read_only(path: Path) -> str | None:
    """Why the sidecar at PATH cannot be written (the file or its folder is read-only), or None.

    The owner's write bit counts as well as access(2): as root everything is writable, but a file or folder its
    owner made read-only is still one the user asked us not to change."""
    for target, what in ((path, "sidecar"), (path.parent, "folder")):
        try:
            mode = target.stat().st_mode
        except FileNotFoundError:
            continue
        if not (mode & stat.S_IWUSR) or not os.access(target, os.W_OK):
            return f"its {what} {target} is read-only"
    return None


def remove_leftovers(root: Path) -> int:
    """Delete the temp files a killed run left beside sidecars (the sidecars themselves are whole); how many."""
    count = 0
    for found in walk_photos(root, extensions=(".tmp",)):
        if LEFTOVER.match(found.path.name):
            found.path.unlink(missing_ok=True)
            count += 1
    return count


def place_in(
    path: Path, place: Place, provenance: Provenance, estimate: bool = False, force: bool = False, write: bool = True
) -> str:
    """Write PLACE into the sidecar at PATH; what happened: 'wrote', 'unchanged' (our fields are already there) or
    why not ('has GPS', 'conflict'). Raises NotXmp (the sidecar is left alone) and OSError (it could not be written)."""
    old = read(path)
    if old is not None:
        ours = packet.read_provenance(old)
        if ours is not None and ours.get("Photo") not in (None, provenance.photo):
            return f"conflict: {path.name} holds the place of {ours.get('Photo')}"
        if not force and packet.user_gps(old):
            return "has GPS"
        if ours is not None:  # a rerun: the same fields with the old date are the same bytes -> nothing to do
            same = Provenance(**{**provenance.__dict__, "date": ours.get("Date", "")})
            if packet.merge(old, place, same, estimate, force) == old:
                return "unchanged"
    new = packet.merge(old, place, provenance, estimate, force)
    if write:
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(new)
    return "wrote"


def take_out(path: Path) -> str:
    """--undo for one sidecar: ours removed ('removed'), the file deleted when we created it and nothing else is in
    it ('deleted'), or 'not ours'. Raises NotXmp and OSError like place_in."""
    old = read(path)
    if old is None or packet.read_provenance(old) is None:
        return "not ours"
    new = packet.remove_ours(old)
    if new is None:
        path.unlink()
        return "deleted"
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(new)
    return "removed"
