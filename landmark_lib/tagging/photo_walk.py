"""The photos of a folder tree, found lazily in path order: a library of millions of files is never listed at once
(memory holds one folder's listing per level), and every file that cannot be tagged comes with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..data.folder import IMAGE_EXTENSIONS


def display(path: Path | str) -> str:
    """PATH as text that can always be written, one text per name: bytes of non-UTF-8 file names become \\xNN escapes
    and a backslash of the name is doubled, so a name whose text is `caf\\xe9` stays apart from the Latin-1 `café`."""
    return os.fsencode(path).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Found:
    """One file (or unlistable folder) of the tree: its size and mtime (None when it cannot be read), or why not."""

    path: Path
    size: int | None = None
    mtime_ns: int | None = None
    problem: str | None = None


def _unlistable(path: Path, error: OSError) -> Found:
    reason = "permission denied" if isinstance(error, PermissionError) else error.strerror or type(error).__name__
    return Found(path, problem=f"this folder cannot be listed ({reason}); its photos were not tagged.")


def walk_photos(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Iterator[Found]:
    """Image files (or files with these EXTENSIONS) under FOLDER in path order (folders sorted by name, recursively),
    with broken links and folders that cannot be listed as problems. Symlinked folders are followed, each real folder
    once (a link loop ends)."""
    info = folder.stat()
    yield from _walk(folder, {(info.st_dev, info.st_ino)}, extensions)


def _walk(directory: Path, seen: set[tuple[int, int]], extensions: tuple[str, ...]) -> Iterator[Found]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        yield _unlistable(directory, error)
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symbolic links
        except OSError:
            is_dir = False
        if is_dir:
            try:
                info = entry.stat()
            except OSError as error:
                yield _unlistable(path, error)
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                yield from _walk(path, seen, extensions)
        elif path.suffix.lower() in extensions:
            yield _file(path, entry)


def _file(path: Path, entry: os.DirEntry) -> Found:
    try:
        info = entry.stat()  # the target's size and mtime for a symbolic link
    except FileNotFoundError:
        if entry.is_symlink():
            return Found(path, problem=f"{display(path.name)} is a broken symbolic link (its target does not exist).")
        return Found(path)  # deleted since the listing: the decoder says so in this file's row
    except OSError:
        return Found(path)  # the decoder names the reason (e.g. permission denied) in this file's row
    return Found(path, info.st_size, info.st_mtime_ns)
