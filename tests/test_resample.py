"""Rational resampling to the model rate."""

import numpy as np
import pytest

from heimdall.dsp.resample import rational_ratio, resample_to
from heimdall.schemas.errors import UnsupportedSampleRate


@pytest.mark.parametrize(
    ("rate", "ratio"),
    [
        (50_000, (1, 1)),
        (48_000, (25, 24)),
        (2_400_000, (1, 48)),
        (12_000, (25, 6)),
        (250_000, (1, 5)),
        (20_000, (5, 2)),
        (20_250, (200, 81)),
        (2_048_000, (25, 1024)),
        (48_000.00001, (25, 24)),
    ],
)
def test_rational_ratio(rate, ratio):
    assert rational_ratio(rate, 50_000) == ratio


@pytest.mark.parametrize("rate", [50_000 * np.e / 2, 12_001.137, 12_345.678901, 1e-3 / 3])
def test_irrational_rate_rejected(rate):
    with pytest.raises(UnsupportedSampleRate, match="sample_rate_hz"):
        rational_ratio(rate, 50_000)


@pytest.mark.parametrize(("rate", "ratio"), [(50_000.1, (1, 1)), (47_999.2, (25, 24))])
def test_a_gnss_fitted_true_rate_stands_for_its_nominal_rate(rate, ratio):
    # within 20 ppm of a whole-Hz rate with a small ratio: features see no difference
    assert rational_ratio(rate, 50_000) == ratio


def test_tone_keeps_its_frequency():
    fs_in, f_hz = 48_000, 3_000.0
    t = np.arange(48_000) / fs_in
    x = np.exp(2j * np.pi * f_hz * t).astype(np.complex64)
    y = resample_to(x, fs_in, 50_000)
    assert len(y) == 50_000
    spectrum = np.abs(np.fft.fft(y[1000:-1000] * np.hanning(len(y) - 2000)))
    freqs = np.fft.fftfreq(len(y) - 2000, 1 / 50_000)
    assert abs(freqs[np.argmax(spectrum)] - f_hz) < 2.0


def test_same_rate_is_identity():
    x = np.arange(10, dtype=np.complex64)
    assert resample_to(x, 50_000, 50_000) is x
