"""Which localization method a job gets (DESIGN §11): ``auto`` takes ``tdoa`` or ``rss`` when
only one applies; when both do it returns ``auto`` (time differences, fused with the RSS
network only when the time fix is ambiguous — see the README for why); a job neither can
serve fails with the code of what is missing (never a silent guess)."""

from __future__ import annotations

from heimdall.dsp.resample import rational_ratio
from heimdall.schemas.errors import (
    HeimdallError,
    NoCommonTime,
    TooFewReceivers,
    UnsupportedFrequency,
)
from heimdall.schemas.job import IQJob
from heimdall.schemas.manifest import ModelManifest
from heimdall.tdoa.align import MIN_OVERLAP_S, MIN_TIMED, timed

MIN_RECEIVERS = 3


def timed_indices(job: IQJob) -> list[int]:
    """Captures whose clocks are good enough for time differences."""
    return [
        i
        for i, r in enumerate(job.receivers)
        if r.time_ns is not None and timed(r.clock.source, r.clock.uncertainty_ns)
    ]


def tdoa_problem(job: IQJob) -> HeimdallError | None:
    """Why time differences cannot serve the job (``None``: they can), from metadata only."""
    indices = timed_indices(job)
    if len(indices) < MIN_TIMED:
        return NoCommonTime(
            f"{len(indices)} captures carry GNSS time within 1 µs; time differences need "
            f"{MIN_TIMED}"
        )
    spans = [
        (r.time_ns, r.time_ns + r.num_samples * 1e9 / r.sample_rate_hz)
        for r in (job.receivers[i] for i in indices)
    ]
    overlap_s = (min(end for _, end in spans) - max(start for start, _ in spans)) / 1e9
    if overlap_s < MIN_OVERLAP_S:
        return NoCommonTime(
            f"the GNSS-timed captures overlap for {max(overlap_s, 0):.3f} s; time differences "
            f"need {MIN_OVERLAP_S} s"
        )
    return None


def rss_problem(job: IQJob, manifest: ModelManifest, where) -> HeimdallError | None:
    """Why the RSS network cannot serve the job (``None``: it can)."""
    if len(job.receivers) < MIN_RECEIVERS:
        return TooFewReceivers(
            f"{len(job.receivers)} receivers present; the model needs at least {MIN_RECEIVERS}"
        )
    band = manifest.frequency_range_hz
    for index, capture in enumerate(job.receivers):
        if band is not None and not band[0] <= capture.center_frequency_hz <= band[1]:
            return UnsupportedFrequency(
                f"{where(job, index)} is tuned to {_mhz(capture.center_frequency_hz)}, outside "
                f"{_mhz(band[0])}–{_mhz(band[1])}, the band the RSS network of model "
                f"{manifest.version} was trained on"
            )
        try:
            rational_ratio(capture.sample_rate_hz, manifest.preprocessing.sample_rate_hz)
        except HeimdallError as exc:
            return type(exc)(f"{where(job, index)}: {exc}")
    return None


def choose(job: IQJob, manifest: ModelManifest, where) -> str:
    """``rss``, ``tdoa``, ``hybrid`` or ``auto`` (both apply) for this job, or the error
    saying why none applies."""
    rss = rss_problem(job, manifest, where)
    tdoa = tdoa_problem(job)
    if job.method == "rss" or (job.method == "auto" and tdoa is not None):
        if rss is not None:
            if job.method == "auto":
                raise type(rss)(f"{rss}; no time differences either: {tdoa}")
            raise rss
        return "rss"
    if job.method == "tdoa" or (job.method == "auto" and rss is not None):
        if tdoa is not None:
            raise tdoa
        return "tdoa"
    for problem in (tdoa, rss):  # hybrid asked for, or auto with both available
        if problem is not None:
            raise problem
    return job.method


def _mhz(frequency_hz: float) -> str:
    return f"{frequency_hz / 1e6:.6g} MHz"
