"""One bound on the work the server does at once, shared by every endpoint (POST /v1/tag, /predict, /tag, Teach, Try).

Each endpoint has its own queue, so without a shared bound their workers decode side by side: six concurrent hostile
requests once took 5.9 GB. A decode and its model call hold one of CONCURRENCY slots; what they freed is given back to
the OS before the slot is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..data.images import release_memory

CONCURRENCY = 2  # a CPU Space has 2 vCPUs: more parallel requests only slow each other down
_slots = threading.BoundedSemaphore(CONCURRENCY)


@contextmanager
def work_slot() -> Iterator[None]:
    """Hold a slot while decoding photos and running the model (waits for one); the memory goes back on release."""
    with _slots:
        try:
            yield
        finally:
            release_memory()
