"""Peak memory of one large job in a worker child (DESIGN §8.14), measured, not estimated.

A private redis-server, one ``heimdall worker`` node with one child, and one job of
``receivers`` × ``samples`` cf32 IQ sent by blobs (the producer's default); with ``timed`` the
captures carry GNSS time and the job asks for ``tdoa``. The child's ``VmHWM`` (peak resident
set since it started, from ``/proc``) is read before and after the job; the difference is what
the job cost on top of a child that has loaded its ONNX session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from heimdall.config import Settings
from heimdall.dsp.iq import encode_iq
from heimdall.harness.console import format_table
from heimdall.harness.fleet import LocalFleet
from heimdall.schemas import IQJob, ReceiverCapture
from heimdall.schemas.job import Clock, datetime_to_ns

MIB = 2**20


@dataclass
class MemoryReport:
    receivers: int
    samples: int
    iq_bytes: int
    status: str
    error: str | None
    idle_peak_rss_bytes: int  # the child's VmHWM before the job (session loaded)
    peak_rss_bytes: int  # its VmHWM after the job
    max_job_samples: int
    method: str = "rss"

    @property
    def job_cost_bytes(self) -> int:
        return self.peak_rss_bytes - self.idle_peak_rss_bytes

    def table(self) -> str:
        rows = [
            ["job", f"{self.receivers} receivers × {self.samples} cf32 samples, {self.method}"],
            ["raw IQ", f"{self.iq_bytes / MIB:.0f} MiB"],
            ["result", self.status + (f" ({self.error})" if self.error else "")],
            ["child peak RSS before the job", f"{self.idle_peak_rss_bytes / MIB:.0f} MiB"],
            ["child peak RSS after the job", f"{self.peak_rss_bytes / MIB:.0f} MiB"],
            [
                "job's share of the peak",
                f"{self.job_cost_bytes / MIB:.0f} MiB "
                f"({self.job_cost_bytes / max(self.iq_bytes, 1):.2f} × its IQ)",
            ],
            ["HEIMDALL_MAX_JOB_SAMPLES", self.max_job_samples],
        ]
        return format_table(["peak memory", "value"], rows)


def large_job(
    receivers: int, samples: int, seed: int = 1, timed: bool = False
) -> tuple[IQJob, dict[int, bytes]]:
    """A job of ``receivers`` captures around Turin: noise plus a tone heard by all; ``timed``:
    GNSS time tags (σ 50 ns) and method ``tdoa``."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC).replace(microsecond=0)
    time_ns = datetime_to_ns(start) if timed else None
    clock = Clock(source="gnss", uncertainty_ns=50.0) if timed else Clock()
    captures, payloads = [], {}
    t = np.arange(samples, dtype=np.float32) / np.float32(50_000.0)
    tone = np.exp(2j * np.pi * np.float32(3_000.0) * t).astype(np.complex64)
    for i in range(receivers):
        level = np.float32(10 ** (rng.uniform(-45, -25) / 20))
        noise = rng.standard_normal(2 * samples, dtype=np.float32).view(np.complex64)
        payloads[i] = encode_iq(noise * np.float32(1e-3) + level * tone, "cf32_le")
        del noise
        captures.append(
            ReceiverCapture(
                receiver_id=f"rx{i:02d}",
                lat=45.07 + rng.uniform(-0.6, 0.6),
                lon=7.69 + rng.uniform(-0.8, 0.8),
                sample_rate_hz=50_000.0,
                center_frequency_hz=145_500_000.0,
                start_time=start,
                datatype="cf32_le",
                num_samples=samples,
                iq_ref=f"placeholder:{i}",
                time_ns=time_ns,
                clock=clock,
            )
        )
    method = "tdoa" if timed else "auto"
    return IQJob(job_id=str(uuid.uuid4()), receivers=captures, method=method), payloads


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def measure(
    receivers: int = 16,
    samples: int = 2_000_000,
    max_job_samples: int | None = None,
    timed: bool = False,
) -> MemoryReport:
    job, payloads = large_job(receivers, samples, timed=timed)
    iq_bytes = sum(len(p) for p in payloads.values())
    settings = Settings(key_prefix="memory", metrics_port=None)
    if max_job_samples is not None:
        settings = settings.model_copy(update={"max_job_samples": max_job_samples})
    with LocalFleet(settings) as fleet:
        (child,) = fleet.start_node(concurrency=1).child_pids()
        idle = _peak_rss_bytes(child)
        result = fleet.producer.submit(job, payloads).result(timeout_s=300)
        peak = _peak_rss_bytes(child)
    return MemoryReport(
        receivers=receivers,
        samples=samples,
        iq_bytes=iq_bytes,
        status=result.status,
        error=result.error.code.value if result.error else None,
        idle_peak_rss_bytes=idle,
        peak_rss_bytes=peak,
        max_job_samples=settings.max_job_samples,
        method=result.method or job.method,
    )
