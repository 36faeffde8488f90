"""The TDoA chain for one job, alone or fused with the RSS network (DESIGN §11).

align → pairwise delays → maximum likelihood. For ``hybrid`` the RSS network's Gaussian
(mean, covariance) weighs the time fix's modes (e.g. the two crossings of a 3-station fix) and
picks one; the position stays time's. The result's ``method`` says both were used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.schemas.errors import NoSignal
from heimdall.tdoa.align import Aligned, TimedCapture, align
from heimdall.tdoa.correlate import PairDelay, pair_delays
from heimdall.tdoa.solve import (
    MAX_SIGMA_EXTENTS,
    Fix,
    GaussianPrior,
    Geometry,
    TooFewPairs,
    choose_mode,
    locate,
    max_sigma_m,
    receivers_of,
    unplaced,
)

STRONG_PAIR = 0.5  # peak quality of a pair that times a signal, not the noise's largest lag
MIN_HEARD = 3  # DESIGN §4 no_signal: a position needs a signal at 3 receivers
UNDECIDED_RATIO = 0.2  # another mode this likely (a ratio under 5): the data cannot choose
MAX_WINDOW_SAMPLES = 1 << 19  # per receiver: 10 s at 50 kHz, 43 s at 12 kHz (bounded memory)


@dataclass
class TdoaOutcome:
    fix: Fix
    aligned: Aligned
    pairs: list[PairDelay]  # the pairs the fix used
    geometry: Geometry
    receiver_sigma_s: np.ndarray
    measured: list[PairDelay]  # every pair that correlated

    def receiver(self, row: int) -> str:
        return self.aligned.captures[row].receiver_id

    @property
    def ambiguous(self) -> bool:
        """Other likelihood modes compete (e.g. the two crossings of a 3-station fix)."""
        return bool(self.fix.alternatives) or len(self.aligned.captures) < 4

    @property
    def undecided(self) -> bool:
        """Another mode is nearly as likely as the estimate: the result must show both."""
        return any(a["relative_likelihood"] >= UNDECIDED_RATIO for a in self.fix.alternatives)

    def with_prior(self, prior: GaussianPrior) -> TdoaOutcome:
        """The mode of the time fix that ``prior`` (hybrid) makes likeliest: no new
        correlation (see :func:`~heimdall.tdoa.solve.choose_mode`)."""
        fix = choose_mode(self.geometry, self.fix, self.receiver_sigma_s, prior)
        return TdoaOutcome(
            fix, self.aligned, fix.pairs, self.geometry, self.receiver_sigma_s, self.measured
        )


def tdoa_fix(captures: list[TimedCapture], max_samples: int = MAX_WINDOW_SAMPLES) -> TdoaOutcome:
    """Position from time differences (raises ``NoCommonTime`` or ``NoSignal``)."""
    aligned = align(captures, max_samples=max_samples)
    pairs, _, receiver_sigma_s = pair_delays(aligned)
    geometry = Geometry(
        np.array([c.lat for c in captures]),
        np.array([c.lon for c in captures]),
        np.array([c.alt_m for c in captures]),
        aligned.center_frequency_hz,
    )
    try:
        fix = locate(geometry, pairs, receiver_sigma_s)
    except TooFewPairs as exc:
        raise NoSignal(f"time differences: {exc}") from exc
    refuse_unplaced(geometry, fix)
    return TdoaOutcome(fix, aligned, fix.pairs, geometry, receiver_sigma_s, pairs)


def refuse_unplaced(geometry: Geometry, fix: Fix) -> None:
    """Raise ``NoSignal`` when a clear peak (``STRONG_PAIR``) times the signal at fewer than
    ``MIN_HEARD`` receivers and the fix places nothing (:func:`unplaced`): the weak pairs' noise
    drew the curve. Three or more timed receivers that still leave a curve (stations close
    together, the transmitter far outside) keep their fix and its wide ellipse."""
    heard = len(receivers_of([p for p in fix.pairs if p.peak_quality >= STRONG_PAIR]))
    if heard < MIN_HEARD and unplaced(geometry, fix):
        raise NoSignal(
            f"time differences: a clear peak (quality ≥ {STRONG_PAIR}) times the signal at "
            f"{heard} receivers, fewer than {MIN_HEARD}, and the weaker pairs put the "
            f"transmitter on a curve, not at a point: its σ along the curve reaches the bound, "
            f"{MAX_SIGMA_EXTENTS:g} × the receivers' extent ({max_sigma_m(geometry) / 1e3:.0f} km)"
        )
