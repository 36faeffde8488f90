"""Robust fit of sample index → GNSS time for one recording: first-sample time, true rate.

A receiver stamps each block of samples with the GNSS time of its first sample. The samples
themselves are evenly spaced at the ADC's true rate, so ``t = t0 + n / fs`` holds over any
stretch with no lost samples. Real timestamps break that in three ways this fit survives:
stale stamps (typically the first block or two of a stream), isolated bad stamps, and jumps
(lost samples or a re-locked clock: every later stamp sits on a different line). The fit keeps
the longest stretch that lies on one line, drops isolated outliers inside it, and says what it
dropped and where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_TIMED_BLOCKS = 4
MIN_STEP_NS = 500.0  # smallest timestamp step called a jump (GNSS stamps scatter by ~50 ns)
JUMP_RUN = 3  # this many consecutive stamps off the line are a jump, not outliers
CLIP_SIGMAS = 4.0
CLIP_FLOOR_NS = 50.0


class ClockFitError(ValueError):
    """No trustworthy line through the timestamps."""


@dataclass(frozen=True)
class Jump:
    """Stamps beyond the kept range sit ``step_ns`` off its line, from the first stamped block
    past its end (``after``) or before its start; everything on that side is dropped."""

    block: int  # first stamped block off the line on that side
    step_ns: float
    after: bool


@dataclass(frozen=True)
class ClockFit:
    """The kept blocks ``first_block..last_block`` (inclusive) and their clock."""

    first_block: int
    last_block: int
    time_ns: int  # GNSS time of the first sample of first_block
    sample_rate_hz: float
    residual_rms_ns: float
    timed_blocks: int  # stamps the final fit used
    outliers: tuple[int, ...]  # blocks inside the kept range whose stamps were dropped
    stale_leading: tuple[int, ...]  # stamped blocks before the kept range, off its line
    jumps: tuple[Jump, ...]


def fit_clock(
    sample_index: np.ndarray, time_ns: np.ndarray, usable: np.ndarray, nominal_rate_hz: float
) -> ClockFit:
    """Fit ``time_ns[i] = t0 + sample_index[i] / fs`` over the blocks where ``usable`` is set.

    ``sample_index`` is each block's first sample (int), ``time_ns`` its stamp (int ns, any
    epoch), ``nominal_rate_hz`` the rate the file declares (only a fallback starting point).
    """
    timed = np.flatnonzero(usable)
    if len(timed) < MIN_TIMED_BLOCKS:
        raise ClockFitError(
            f"only {len(timed)} blocks carry a usable GNSS time; at least {MIN_TIMED_BLOCKS} needed"
        )
    t_origin = int(time_ns[timed[0]])
    n_origin = int(sample_index[timed[0]])
    n_rel = (sample_index[timed].astype(np.int64) - n_origin).astype(np.float64)
    t_rel = (time_ns[timed].astype(np.int64) - t_origin).astype(np.float64)

    rate_hz = _step_rate(n_rel, t_rel, nominal_rate_hz)
    steps_ns = np.diff(t_rel) - np.diff(n_rel) * 1e9 / rate_hz
    spread = 1.4826 * float(np.median(np.abs(steps_ns - np.median(steps_ns))))
    step_tol_ns = max(MIN_STEP_NS, 8.0 * spread)
    runs = np.split(np.arange(len(timed)), np.flatnonzero(np.abs(steps_ns) > step_tol_ns) + 1)
    main = max(runs, key=lambda r: (n_rel[r[-1]] - n_rel[r[0]], len(r)))

    line, _, rms = _clipped_line(n_rel[main], t_rel[main])
    residual = t_rel - np.polyval(line, n_rel)
    on_line = np.abs(residual) <= max(MIN_STEP_NS, 8.0 * rms)
    lo, jump_before = _extend(on_line, main[0], -1, residual)
    hi, jump_after = _extend(on_line, main[-1], +1, residual)

    inside = np.arange(lo, hi + 1)
    keep = inside[on_line[inside]]
    line, clipped, rms = _clipped_line(n_rel[keep], t_rel[keep])
    slope_ns = float(line[0])
    if not slope_ns > 0:
        raise ClockFitError("timestamps do not increase with the sample index")
    first_n = n_rel[lo]
    jumps = []
    if jump_before is not None:
        jumps.append(Jump(int(timed[jump_before[0]]), jump_before[1], after=False))
    if jump_after is not None:
        jumps.append(Jump(int(timed[jump_after[0]]), jump_after[1], after=True))
    dropped_inside = set(inside[~on_line[inside]]) | set(keep[~clipped])
    return ClockFit(
        first_block=int(timed[lo]),
        last_block=int(timed[hi]),
        time_ns=t_origin + round(float(np.polyval(line, first_n))),
        sample_rate_hz=1e9 / slope_ns,
        residual_rms_ns=rms,
        timed_blocks=int(clipped.sum()),
        outliers=tuple(int(timed[i]) for i in sorted(dropped_inside)),
        stale_leading=()
        if jump_before is not None
        else tuple(int(timed[i]) for i in range(lo) if not on_line[i]),
        jumps=tuple(jumps),
    )


def _step_rate(n_rel: np.ndarray, t_rel: np.ndarray, nominal_rate_hz: float) -> float:
    """Median of block-to-block rates: a start that no stale or jumped stamp can move."""
    dn, dt = np.diff(n_rel), np.diff(t_rel)
    ok = (dn > 0) & (dt > 0)
    if not ok.any():
        return nominal_rate_hz
    return float(np.median(dn[ok] / dt[ok])) * 1e9


def _clipped_line(n: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares ``t = b·n + a`` with iterative σ-clipping: (``[b, a]``, kept mask, RMS)."""
    kept = np.ones(len(n), bool)
    for _ in range(10):
        if kept.sum() < 2:
            raise ClockFitError("fewer than two timestamps agree with each other")
        line = _line(n[kept], t[kept])
        residual = t - np.polyval(line, n)
        rms = float(np.sqrt(np.mean(residual[kept] ** 2)))
        now = np.abs(residual) <= max(CLIP_SIGMAS * rms, CLIP_FLOOR_NS)
        if (now == kept).all():
            break
        kept = now
    return line, kept, rms


def _line(n: np.ndarray, t: np.ndarray) -> np.ndarray:
    if len(n) == 1 or np.ptp(n) == 0:
        raise ClockFitError("timestamps span no samples")
    centre = float(n.mean())
    slope, intercept = np.polyfit(n - centre, t, 1)
    return np.array([slope, intercept - slope * centre])


def _extend(
    on_line: np.ndarray, start: int, direction: int, residual: np.ndarray
) -> tuple[int, tuple[int, float] | None]:
    """Walk from ``start`` while stamps stay on the line; ``JUMP_RUN`` off in a row end it.

    Returns the last on-line position reached and, if a jump ended the walk, its first
    position and the median step (ns).
    """
    edge, off = start, []
    position = start + direction
    while 0 <= position < len(on_line):
        if on_line[position]:
            edge, off = position, []
        else:
            off.append(position)
            if len(off) >= JUMP_RUN:
                return edge, (off[0], float(np.median(residual[off])))
        position += direction
    return edge, None
