"""The base class of expected failures, so the `landmark` command can tell them from bugs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class LandmarkError(Exception):
    """An expected failure (bad input, a missing file, an unreachable host): the message is one sentence naming the fix.

    `landmark` prints it as `error: MESSAGE` and exits with status 2; anything else is a bug and keeps its traceback.
    """


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """Inside: a full disk or a folder without write permission is an expected failure (commands that write files)."""
    try:
        yield
    except LandmarkError:
        raise
    except OSError as error:
        raise LandmarkError(str(error)) from error
