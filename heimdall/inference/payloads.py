"""Where the Localizer gets the IQ of captures sent by reference (``iq_ref``), and the one error
a source may raise that is not the job's fault.

A :class:`PayloadSource` maps a receiver index to its IQ bytes (a plain ``dict`` is one; a
worker's is ``heimdall.store.BlobPayloads``, reading Redis). ``None`` means the payload is
missing: the job fails with ``payload_missing``. A source that cannot be read *now* (its store
went away) raises :class:`PayloadsUnavailable`: that propagates out of the Localizer untouched,
and the source's owner decides what happens to the job (a worker gives it back to its queue).
"""

from __future__ import annotations

import time
from typing import Protocol


class PayloadSource(Protocol):
    def get(self, index: int) -> bytes | None:
        """IQ bytes of receiver ``index``; None when missing."""


class PayloadsUnavailable(Exception):
    """The payload store cannot be read now; not a failure of the job."""


_interruptions: tuple[type[BaseException], ...] = (PayloadsUnavailable,)


def interruptions() -> tuple[type[BaseException], ...]:
    """Exceptions that stop a computation without being the job's fault: they propagate out of
    the Localizer instead of becoming a failed result."""
    return _interruptions


def interrupt_with(exc_type: type[BaseException]) -> None:
    """Let ``exc_type`` stop computations too: a host's time limit (a Celery child registers
    its soft time limit once, at import)."""
    global _interruptions
    if exc_type not in _interruptions:
        _interruptions = (*_interruptions, exc_type)


class TimedSource:
    """A source that adds up the time spent reading it (the job's ``fetch`` stage)."""

    def __init__(self, source: PayloadSource | None) -> None:
        self.source = source
        self.fetch_s = 0.0

    def get(self, index: int) -> bytes | None:
        if self.source is None:
            return None
        started = time.perf_counter()
        try:
            return self.source.get(index)
        finally:
            self.fetch_s += time.perf_counter() - started
