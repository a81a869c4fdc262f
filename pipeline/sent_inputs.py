"""The inputs each job's submit sent to the provider, kept in the process for its collect.

The collect lays the provider's result over the very source and mask the provider was
given (`pipeline.outputs`). The submit has just read them from S3, so the worker keeps
them, least recently used first out past `DEFAULT_MAX_BYTES`, and the job's collect
takes them back: no second read from S3. A collect that runs in another process, or
after its job's inputs were dropped, reads them from S3 again.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

from pipeline.models import JobRef

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
Inputs = tuple[bytes, bytes | None]


def _size(inputs: Inputs) -> int:
    image, mask = inputs
    return len(image) + (len(mask) if mask is not None else 0)


class SentInputs:
    """Image and mask bytes by job, at most `max_bytes` of them; thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._kept: LRUCache[JobRef, Inputs] = LRUCache(maxsize=max_bytes, getsizeof=_size)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentInputs({len(self._kept)} jobs, {self._kept.currsize} bytes)"

    def keep(self, ref: JobRef, image: bytes, mask: bytes | None) -> None:
        """Keep what the job's submit sent (replacing an earlier attempt's); inputs larger
        than the whole budget are not kept."""
        if _size((image, mask)) > self._kept.maxsize:
            return
        with self._lock:
            self._kept[ref] = (image, mask)

    def take(self, ref: JobRef) -> Inputs | None:
        """The job's inputs, given up by the cache; None when they are not kept here."""
        with self._lock:
            return self._kept.pop(ref, None)
