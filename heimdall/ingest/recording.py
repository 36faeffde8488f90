"""One receiver's recording as a reader hands it over: where, how tuned, when, and its IQ.

Readers (``sigmf``, ``kiwi``) turn files into :class:`Recording` without reading the samples;
``assemble`` cuts each to the window the job uses and only then reads that much IQ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from heimdall.schemas.job import BYTES_PER_SAMPLE, Clock

NS_PER_S = 10**9


class IngestError(ValueError):
    """A file (or set of files) that cannot become a job; says which file and what is wrong."""

    def __init__(self, path: str, problem: str, where: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.where = where
        super().__init__(f"{path}{f' ({where})' if where else ''}: {problem}")


@dataclass
class Recording:
    """IQ of one receiver; ``read(start, count)`` returns ``count`` samples from ``start``
    as bytes of ``datatype`` (the job's datatypes: cf32_le, ci16_le, cu8)."""

    source: str  # file(s) it came from, for people
    receiver_id: str
    lat: float
    lon: float
    alt_m: float
    sample_rate_hz: float  # the true rate (fitted when the reader could fit it)
    center_frequency_hz: float
    time_ns: int  # first sample, ns since the Unix epoch (UTC)
    clock: Clock
    datatype: str
    num_samples: int
    read: Callable[[int, int], bytes]
    notes: list[str] = field(default_factory=list)  # what the reader dropped and why

    @property
    def bytes_per_sample(self) -> int:
        return BYTES_PER_SAMPLE[self.datatype]

    @property
    def end_ns(self) -> int:
        """Time just past the last sample."""
        return self.time_ns + self.offset_ns(self.num_samples)

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz

    def offset_ns(self, samples: int) -> int:
        """Time from the first sample to sample ``samples``, ns (rounded)."""
        return round(samples * NS_PER_S / self.sample_rate_hz)

    def sample_at(self, time_ns: int) -> int:
        """Index of the first sample at or after ``time_ns`` (clamped to the recording)."""
        index = math.ceil((time_ns - self.time_ns) * self.sample_rate_hz / NS_PER_S - 1e-9)
        return min(max(index, 0), self.num_samples)


@dataclass
class RecordingSet:
    """Recordings of one emission at several receivers: they become one job."""

    label: str  # the collection, or the files, for people
    recordings: list[Recording]
    files: list[str] = field(default_factory=list)  # every file read, for the drop folder
    refused: list[IngestError] = field(default_factory=list)  # files left out, with why


def gather(label: str, readers: list, files: list[str]) -> RecordingSet:
    """Run each ``reader()`` (→ list of :class:`Recording`); a failing one is refused with its
    reason, the rest stay. Raises when nothing is left."""
    recordings, refused = [], []
    for reader in readers:
        try:
            recordings.append(reader())
        except IngestError as exc:
            refused.append(exc)
    if not recordings:
        reasons = "; ".join(str(e) for e in refused) or "nothing to read"
        raise IngestError(label, f"no usable recording ({reasons})")
    return RecordingSet(label, recordings, files, refused)
