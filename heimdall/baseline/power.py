"""Received signal power of a narrow-band emitter, read from IQ.

Welch's two-sided PSD gives total power; the median bin estimates the noise density because a
2 m narrow-band signal occupies a small part of the 50 kHz band. Signal = total − noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import welch

DETECTION_RATIO = 0.05  # signal must exceed 5 % (−13 dB) of the band's noise power


@dataclass(frozen=True)
class PowerReading:
    signal_dbfs: float  # NaN when not detected
    noise_dbfs: float
    detected: bool


def read_power(iq: np.ndarray, sample_rate_hz: float, nperseg: int = 512) -> PowerReading:
    """Signal and noise power (dBFS) of one capture, and whether a signal is detected."""
    _, psd = welch(
        iq,
        fs=sample_rate_hz,
        window="hann",
        nperseg=nperseg,
        return_onesided=False,
        detrend=False,
        scaling="density",
    )
    total = float(np.mean(np.abs(iq) ** 2))
    noise = float(np.median(psd)) * sample_rate_hz
    signal = total - noise
    detected = signal > DETECTION_RATIO * noise
    return PowerReading(
        signal_dbfs=10.0 * np.log10(signal) if detected else float("nan"),
        noise_dbfs=10.0 * np.log10(max(noise, 1e-30)),
        detected=detected,
    )
