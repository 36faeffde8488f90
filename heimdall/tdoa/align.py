"""Align GNSS-timed captures on one time grid (DESIGN §11, step 1).

Each capture says when its first sample was taken (``time_ns``) and at what true rate. The
common window is where all of them recorded; every capture is interpolated onto one grid over
that window (windowed-sinc fractional delay, which also absorbs ppm rate differences) and mixed
to a common tuning, so sample k of every row is the same instant at the same frequency.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import i0

from heimdall.schemas.errors import NoCommonTime

MAX_CLOCK_UNCERTAINTY_NS = 1000.0
MIN_OVERLAP_S = 0.1
MIN_TIMED = 3
TAPS = 32  # windowed-sinc length: < −60 dB error for signals inside 80 % of the band
KAISER_BETA = 8.0
CHUNK = 4096  # output samples per step: its tap block stays in cache
PHASES = 1024  # tabulated fractional delays (linear between them: < 1e-6 weight error)


@dataclass
class TimedCapture:
    """One capture's samples and time tags."""

    index: int  # in the job
    receiver_id: str
    lat: float
    lon: float
    alt_m: float
    samples: np.ndarray | Callable[[], np.ndarray]  # complex64, or what decodes them
    time_ns: int
    sample_rate_hz: float
    center_frequency_hz: float
    clock_sigma_ns: float
    num_samples: int | None = None  # needed when ``samples`` is a callable

    @property
    def length(self) -> int:
        return self.num_samples if self.num_samples is not None else len(self.samples)

    @property
    def end_ns(self) -> int:
        return self.time_ns + round(self.length * 1e9 / self.sample_rate_hz)

    def read(self) -> np.ndarray:
        return self.samples() if callable(self.samples) else self.samples


@dataclass
class Aligned:
    """Rows of one grid: ``rows[i, k]`` is capture i at ``start_ns + k / rate_hz``."""

    captures: list[TimedCapture]
    rows: np.ndarray  # [R, N] complex64
    start_ns: int
    rate_hz: float
    center_frequency_hz: float

    @property
    def duration_s(self) -> float:
        return self.rows.shape[1] / self.rate_hz


def timed(capture_clock_source: str, uncertainty_ns: float | None) -> bool:
    """Whether a capture's clock is good enough for time differences."""
    return (
        capture_clock_source == "gnss"
        and uncertainty_ns is not None
        and uncertainty_ns <= MAX_CLOCK_UNCERTAINTY_NS
    )


def common_window(captures: list[TimedCapture]) -> tuple[int, int]:
    """(start, end) ns shared by all captures, inset by the interpolator's half length."""
    start = max(c.time_ns + round(TAPS * 1e9 / c.sample_rate_hz) for c in captures)
    end = min(c.end_ns - round(TAPS * 1e9 / c.sample_rate_hz) for c in captures)
    if len(captures) < MIN_TIMED or (end - start) < MIN_OVERLAP_S * 1e9:
        overlap_s = max(end - start, 0) / 1e9
        raise NoCommonTime(
            f"{len(captures)} GNSS-timed captures overlap for {overlap_s:.3f} s; time "
            f"differences need {MIN_TIMED} overlapping by {MIN_OVERLAP_S} s"
        )
    return start, end


def align(captures: list[TimedCapture], max_samples: int | None = None) -> Aligned:
    """Interpolate every capture onto one grid over the common window. Captures given as
    callables are decoded one at a time and let go once on the grid (bounded memory)."""
    start_ns, end_ns = common_window(captures)
    rate_hz = min(c.sample_rate_hz for c in captures)
    count = int((end_ns - start_ns) * rate_hz / 1e9)
    if max_samples is not None:
        count = min(count, max_samples)
    reference_hz = float(np.median([c.center_frequency_hz for c in captures]))
    rows = np.empty((len(captures), count), np.complex64)
    grid_s = np.arange(count) / rate_hz
    for i, c in enumerate(captures):
        offset_s = (start_ns - c.time_ns) / 1e9
        positions = (offset_s + grid_s) * c.sample_rate_hz
        row = fractional_resample(c.read(), positions)
        shift_hz = c.center_frequency_hz - reference_hz
        if shift_hz:
            row *= np.exp(2j * np.pi * shift_hz * grid_s).astype(np.complex64)
        rows[i] = row
    kept = [dataclasses.replace(c, samples=np.empty(0, np.complex64)) for c in captures]
    return Aligned(kept, rows, start_ns, rate_hz, reference_hz)


def fractional_resample(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``x`` at fractional sample ``positions`` (Kaiser-windowed sinc, ``TAPS`` long; weights
    from a table of ``PHASES`` fractional delays, linearly interpolated between them). Samples
    beyond the ends repeat the end sample."""
    table = _weights_table()
    windows = sliding_window_view(x, TAPS) if len(x) >= TAPS else None  # a view, no copy
    offsets = np.arange(-TAPS // 2 + 1, TAPS // 2 + 1)
    out = np.empty(len(positions), np.complex64)
    for lo in range(0, len(positions), CHUNK):
        p = positions[lo : lo + CHUNK]
        base = np.floor(p).astype(np.int64)
        phase = (p - base) * PHASES
        row = np.minimum(phase.astype(np.int64), PHASES - 1)
        alpha = (phase - row).astype(np.float32)[:, None]
        weights = table[row] * (1 - alpha) + table[row + 1] * alpha
        first = base + offsets[0]
        if windows is not None and first.min() >= 0 and first.max() <= len(x) - TAPS:
            taps = windows[first]  # one gather of whole windows (about 2× faster)
        else:  # near an end: per-tap indices, clipped
            taps = x[np.clip(first[:, None] + np.arange(TAPS)[None, :], 0, len(x) - 1)]
        out[lo : lo + CHUNK] = np.einsum("ij,ij->i", taps, weights)
    return out


@functools.cache
def _weights_table() -> np.ndarray:
    """Filter weights for fractional delays 0, 1/PHASES, …, 1: ``[PHASES + 1, TAPS]``."""
    offsets = np.arange(-TAPS // 2 + 1, TAPS // 2 + 1)
    u = offsets[None, :] - (np.arange(PHASES + 1) / PHASES)[:, None]
    window = i0(KAISER_BETA * np.sqrt(np.clip(1 - (u / (TAPS / 2)) ** 2, 0, 1))) / i0(KAISER_BETA)
    return (np.sinc(u) * window).astype(np.float32)
