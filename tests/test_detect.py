"""Signal detection (no_signal): noise alone never reads as a signal; a modest one does."""

import numpy as np
import pytest

from heimdall.dsp.detect import noise_threshold_db, signal_present, signal_to_floor_db
from heimdall.dsp.features import FeatureExtractor, num_frames

FS, N_FFT, HOP = 50_000.0, 512, 128


@pytest.fixture(scope="module")
def fx():
    return FeatureExtractor(FS, N_FFT, HOP, 32)


def _mean_power(fx, x):
    return fx.capture_features(x.astype(np.complex64), 0.0, 1.0)[1]


def _noise(rng, n, level=0.01):
    return level * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)


def test_all_zero_is_silence(fx):
    power = _mean_power(fx, np.zeros(10_000))
    assert signal_to_floor_db(power) == float("-inf")
    assert not signal_present(power, num_frames(10_000, N_FFT, HOP))


@pytest.mark.parametrize("n", [512, 2_000, 10_000, 100_000])
def test_white_noise_is_not_a_signal(fx, n):
    rng = np.random.default_rng(n)
    frames = num_frames(n, N_FFT, HOP)
    hits = sum(signal_present(_mean_power(fx, _noise(rng, n)), frames) for _ in range(100))
    assert hits == 0


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 20.0])
def test_tone_above_the_noise_is_a_signal(fx, snr_db):
    """A tone whose power is -10 dB of the noise in the whole 50 kHz band stands ~14 dB over
    the noise in its own ~5 bins: detected."""
    rng = np.random.default_rng(7)
    n = 10_000
    t = np.arange(n) / FS
    noise = _noise(rng, n)
    amplitude = 0.01 * 10 ** (snr_db / 20)
    x = noise + amplitude * np.exp(2j * np.pi * 3_000.0 * t)
    assert signal_present(_mean_power(fx, x), num_frames(n, N_FFT, HOP))


def test_tone_on_an_exactly_zero_floor(fx):
    t = np.arange(10_000) / FS
    power = _mean_power(fx, 0.5 * np.exp(2j * np.pi * 1_000.0 * t))
    assert signal_present(power, num_frames(10_000, N_FFT, HOP))


def test_threshold_falls_with_averaging_and_has_a_floor():
    levels = [noise_threshold_db(t, N_FFT) for t in (1, 12, 75, 1_000)]
    assert levels == sorted(levels, reverse=True)
    assert levels[0] > 10.0 and levels[-1] == pytest.approx(3.0)


def test_chunked_features_equal_the_whole_stft(fx):
    """capture_features works 1024 frames at a time; it must equal the one-shot features."""
    rng = np.random.default_rng(3)
    x = _noise(rng, 200_000, 0.1).astype(np.complex64)  # 1559 frames: two chunks
    chunked, mean_power = fx.capture_features(x, -70.0, 12.0)
    whole = fx.features(x, -70.0, 12.0)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean_power, fx.power(x).mean(axis=0), rtol=1e-4)
