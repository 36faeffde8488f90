"""Exact rational resampling of a capture to the model's sample rate."""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly

from heimdall.schemas.errors import UnsupportedSampleRate

RATIO_TOLERANCE = 1e-6
RATE_RESOLUTION_HZ = Fraction(1, 1000)  # rates are read to the millihertz
MAX_FACTOR = 4096  # larger polyphase factors make filters of 10⁵ taps: not a real SDR rate
NOMINAL_TOLERANCE = 20e-6  # a GNSS-fitted true rate this close to a whole-Hz rate stands for it


@lru_cache(maxsize=1024)  # the same few rates come again with every job
def rational_ratio(from_rate_hz: float, to_rate_hz: float) -> tuple[int, int]:
    """``(up, down)`` with up/down = to/from exactly, for rates within 1e-6 of a millihertz grid.

    Real receivers run at rates like 48 kHz, 20.25 kHz or 2.048 MHz, whose ratio to the model
    rate is a fraction with small terms (25/24, 200/81, 25/1024). A true rate fitted from GNSS
    time (50 000.1 Hz) is taken as its whole-Hz nominal rate when within 20 ppm of it: that
    scales the spectrum by ppm, which no power feature can see. Anything else is refused.
    """
    try:
        return _exact_ratio(from_rate_hz, to_rate_hz)
    except UnsupportedSampleRate:
        span = NOMINAL_TOLERANCE * from_rate_hz
        nominal = [
            Fraction(round(to_rate_hz / RATE_RESOLUTION_HZ) * RATE_RESOLUTION_HZ) / rate
            for rate in range(max(math.ceil(from_rate_hz - span), 1), int(from_rate_hz + span) + 1)
        ]
        fits = [r for r in nominal if max(r.numerator, r.denominator) <= MAX_FACTOR]
        if not fits:
            raise
        best = min(fits, key=lambda r: max(r.numerator, r.denominator))
        return best.numerator, best.denominator


def _exact_ratio(from_rate_hz: float, to_rate_hz: float) -> tuple[int, int]:
    from_rate = Fraction(round(from_rate_hz / RATE_RESOLUTION_HZ)) * RATE_RESOLUTION_HZ
    to_rate = Fraction(round(to_rate_hz / RATE_RESOLUTION_HZ)) * RATE_RESOLUTION_HZ
    if from_rate <= 0 or abs(float(from_rate) - from_rate_hz) > RATIO_TOLERANCE * from_rate_hz:
        raise UnsupportedSampleRate(
            f"sample_rate_hz {from_rate_hz!r} is not a rate within {RATIO_TOLERANCE:g} of a "
            f"millihertz value"
        )
    ratio = to_rate / from_rate
    if ratio.numerator > MAX_FACTOR or ratio.denominator > MAX_FACTOR:
        raise UnsupportedSampleRate(
            f"sample_rate_hz {from_rate_hz:g} → {to_rate_hz:g} Hz needs resampling by "
            f"{ratio.numerator}/{ratio.denominator}; factors above {MAX_FACTOR} are not supported"
        )
    return ratio.numerator, ratio.denominator


def resampled_length(num_samples: int, up: int, down: int) -> int:
    """Samples out of :func:`resample_to` for ``num_samples`` in: ``ceil(n · up / down)``."""
    return -(-num_samples * up // down)


def resample_to(samples: np.ndarray, from_rate_hz: float, to_rate_hz: float) -> np.ndarray:
    """Resample complex ``samples`` by the exact polyphase ratio; a no-op at equal rates."""
    up, down = rational_ratio(from_rate_hz, to_rate_hz)
    if up == down:
        return samples
    out = resample_poly(samples, up, down)
    return out if out.dtype == np.complex64 else out.astype(np.complex64)
