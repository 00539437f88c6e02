"""The base class of expected failures, so the `landmark` command can tell them from bugs."""
from __future__ import annotations


class LandmarkError(Exception):
    """An expected failure (bad input, a missing file, an unreachable host): the message is one sentence naming the fix.

    `landmark` prints it as `error: MESSAGE` and exits with status 2; anything else is a bug and keeps its traceback.
    """
