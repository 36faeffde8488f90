"""Unit-power complex baseband waveforms of narrow-band 2 m transmissions."""

from __future__ import annotations

import numpy as np


def nfm(
    num_samples: int,
    sample_rate_hz: float,
    offset_hz: float,
    deviation_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Narrow-band FM carrying a voice-like sum of 2–4 audio tones (300–3000 Hz)."""
    t_s = np.arange(num_samples) / sample_rate_hz
    n_tones = int(rng.integers(2, 5))
    freqs_hz = rng.uniform(300.0, 3000.0, n_tones)
    amps = rng.uniform(0.3, 1.0, n_tones)
    phases = rng.uniform(0.0, 2.0 * np.pi, n_tones)
    audio = (amps[:, None] * np.sin(2 * np.pi * freqs_hz[:, None] * t_s + phases[:, None])).sum(0)
    audio /= np.abs(audio).max()
    inst_freq_hz = offset_hz + deviation_hz * audio
    phase = 2.0 * np.pi * np.cumsum(inst_freq_hz) / sample_rate_hz
    return np.exp(1j * phase).astype(np.complex64)


def cw(num_samples: int, sample_rate_hz: float, offset_hz: float) -> np.ndarray:
    """An unmodulated carrier at ``offset_hz`` from the tuned frequency."""
    t_s = np.arange(num_samples) / sample_rate_hz
    return np.exp(2j * np.pi * offset_hz * t_s).astype(np.complex64)


def complex_noise(
    shape: tuple[int, ...], power: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Circular complex white Gaussian noise with total power ``power`` (broadcast on axis 0)."""
    sigma = np.sqrt(np.asarray(power, dtype=np.float64) / 2.0).reshape(
        -1, *([1] * (len(shape) - 1))
    )
    noise = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
        shape, dtype=np.float32
    )
    return (noise * sigma).astype(np.complex64)
