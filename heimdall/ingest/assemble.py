"""A :class:`RecordingSet` → one ``heimdall.iqjob/1``: common window, caps, inline IQ.

When every clock is disciplined (gnss or ntp), each recording is cut to the window all of them
share, so the job carries the same stretch of time from every receiver. Captures are then
shortened (all to the same duration) to fit the per-capture and per-job sample caps. Only the
samples the job keeps are read from disk.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from heimdall.ingest.recording import IngestError, Recording, RecordingSet
from heimdall.schemas.job import (
    MAX_JOB_SAMPLES,
    MAX_RECEIVERS,
    MAX_SAMPLES,
    MIN_SAMPLES,
    IQJob,
    ReceiverCapture,
    ns_to_datetime,
)

# Job ids of ingested sets are derived from their content: a set submitted twice (a drop
# folder restarted between submitting and moving it) is the same job, computed once.
JOB_NAMESPACE = uuid.UUID("6f0c3f55-5a0e-4d5e-9d6f-3c1f3b1f7a11")


@dataclass
class Assembled:
    """The job and what assembling it dropped or cut."""

    job: IQJob
    notes: list[str] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)


def assemble(
    found: RecordingSet,
    max_job_samples: int = MAX_JOB_SAMPLES,
    **job_fields: Any,
) -> Assembled:
    """One job from the set (raises :class:`IngestError` when none can be made)."""
    recordings = _unique(found)
    notes: list[str] = []
    windows = _common_window(recordings, notes)
    per_capture = min(MAX_SAMPLES, max_job_samples // len(recordings))
    duration_ns = min(
        min(end - start, r.offset_ns(per_capture))
        for r, (start, end) in zip(recordings, windows, strict=True)
    )
    receivers, digest = [], hashlib.sha256()
    for r, (start_ns, _) in zip(recordings, windows, strict=True):
        first = r.sample_at(start_ns)
        count = min(r.sample_at(start_ns + duration_ns) - first, per_capture)
        if count < MIN_SAMPLES:
            notes.append(f"{r.receiver_id}: only {count} samples in the window; left out")
            continue
        if count < r.num_samples:
            notes.append(
                f"{r.receiver_id}: samples {first}–{first + count - 1} of {r.num_samples} used "
                f"({count / r.sample_rate_hz:.3f} s)"
            )
        iq = r.read(first, count)
        if len(iq) != count * r.bytes_per_sample:
            raise IngestError(r.source, f"read {len(iq)} bytes for {count} samples")
        digest.update(iq)
        receivers.append(_capture(r, first, count, iq))
    if not receivers:
        raise IngestError(found.label, "no receiver has enough samples in the common window")
    digest.update(repr(sorted(job_fields.items())).encode())
    for capture in receivers:
        digest.update(capture.model_dump_json(exclude={"iq_b64"}).encode())
    fields = {
        "job_id": str(uuid.uuid5(JOB_NAMESPACE, digest.hexdigest())),
        "meta": {"ingest": {"set": found.label[:200]}},
    } | job_fields
    job = IQJob(receivers=receivers, **fields)
    reader_notes = [f"{r.receiver_id}: {n}" for r in recordings for n in r.notes]
    return Assembled(job, reader_notes + notes, recordings)


def _unique(found: RecordingSet) -> list[Recording]:
    seen: dict[str, Recording] = {}
    for r in found.recordings:
        if r.receiver_id in seen:
            raise IngestError(
                r.source,
                f"receiver {r.receiver_id!r} also recorded {seen[r.receiver_id].source}; one "
                "recording per receiver in a job",
            )
        seen[r.receiver_id] = r
    if len(seen) > MAX_RECEIVERS:
        raise IngestError(found.label, f"{len(seen)} receivers; a job holds {MAX_RECEIVERS}")
    return list(seen.values())


def _common_window(recordings: list[Recording], notes: list[str]) -> list[tuple[int, int]]:
    """Per recording the (start, end) ns it contributes: the shared window when all clocks
    are disciplined and they overlap, else its whole span."""
    whole = [(r.time_ns, r.end_ns) for r in recordings]
    if any(r.clock.source == "free" for r in recordings):
        return whole
    start = max(r.time_ns for r in recordings)
    end = min(r.end_ns for r in recordings)
    if end <= start:
        notes.append("the recordings share no common time window; each is used whole")
        return whole
    return [(start, end)] * len(recordings)


def _capture(r: Recording, first: int, count: int, iq: bytes) -> ReceiverCapture:
    time_ns = r.time_ns + r.offset_ns(first)
    return ReceiverCapture(
        receiver_id=r.receiver_id,
        lat=r.lat,
        lon=r.lon,
        alt_m=r.alt_m,
        sample_rate_hz=r.sample_rate_hz,
        center_frequency_hz=r.center_frequency_hz,
        start_time=ns_to_datetime(time_ns),
        datatype=r.datatype,
        num_samples=count,
        iq_b64=base64.b64encode(iq).decode("ascii"),
        time_ns=time_ns,
        clock=r.clock,
    )
