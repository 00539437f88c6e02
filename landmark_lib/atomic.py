"""Atomic file writes (temp file in the same folder + rename): a kill, a crash or a full disk mid-write leaves the
previous file intact instead of a truncated one (a 0-byte config.json made a killed run unrecoverable)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """A write failed because the disk (or quota) is full; the message names the folder and the fix."""

    def __init__(self, folder: str | Path, detail: str = ""):
        super().__init__(errno.ENOSPC, f"no space left on {folder}{detail}; free some space there or write elsewhere")
        self.folder = Path(folder)


def no_space(error: OSError, path: str | Path) -> NoSpaceError | None:
    """A NoSpaceError naming PATH's folder when ERROR is a full disk (ENOSPC, EDQUOT), else None."""
    if error.errno not in NO_SPACE:
        return None
    return NoSpaceError(Path(path) if Path(path).is_dir() else Path(path).parent)


@contextlib.contextmanager
def atomic_path(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """A temporary path next to PATH for a writer that takes a file name; renamed over PATH only if the block succeeds.

    REPLACE=False never clobbers: if PATH exists by then (even created meanwhile), FileExistsError and PATH is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # 0o666 & ~umask, like a plain open()
    try:
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if PATH exists
            os.unlink(tmp)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise no_space(error, path) or error  # noqa: B904 - ERROR itself, or the NoSpaceError that names the folder
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """PATH's new content is TEXT, or (after any failure) still its old content."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths A and B in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_folder(new: Path, dest: Path) -> None:
    """Put the finished folder NEW at DEST, replacing what DEST held: one atomic exchange where the system has it
    (readers see the old folder or the new one, never neither), else two renames; the old folder is deleted after."""
    new, dest = Path(new), Path(dest)
    if not dest.exists():
        new.rename(dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new)  # now the old folder
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old)


def temp_folder(dest: Path) -> Path:
    """A new empty folder beside DEST to build its replacement in (same file system, so replace_folder renames);
    the leftovers of builds that were killed (their process is gone) are deleted first."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.building-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = dest.with_name(f".{dest.name}.building-{os.getpid()}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def process_alive(pid: int) -> bool:
    """Whether a process PID exists (a temp file named after a live process may still be in use)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
