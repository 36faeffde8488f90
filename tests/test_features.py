"""The DESIGN §5 feature pipeline against librosa and first principles."""

import librosa
import numpy as np
import pytest
import scipy.signal

from heimdall.dsp.features import FeatureExtractor, mel_filterbank, num_frames, periodic_hann

FS, N_FFT, HOP, N_MELS = 50_000.0, 512, 128, 32


@pytest.fixture(scope="module")
def fx():
    return FeatureExtractor(FS, N_FFT, HOP, N_MELS)


def test_window_is_periodic_hann():
    np.testing.assert_allclose(
        periodic_hann(N_FFT), scipy.signal.get_window("hann", N_FFT), atol=1e-7
    )


def test_frame_count():
    assert num_frames(10_000, N_FFT, HOP) == 75
    assert FeatureExtractor(FS, N_FFT, HOP, N_MELS).mel_power(np.zeros(10_000)).shape == (64, 75)


def test_positive_side_matches_librosa_for_real_input(fx):
    rng = np.random.default_rng(1)
    t = np.arange(10_000) / FS
    y = (0.3 * np.sin(2 * np.pi * 4_000 * t) + 0.05 * rng.standard_normal(10_000)).astype(
        np.float32
    )
    ours = fx.mel_power(y.astype(np.complex64))[N_MELS:]
    ref = (
        librosa.feature.melspectrogram(
            y=y,
            sr=FS,
            n_fft=N_FFT,
            hop_length=HOP,
            center=False,
            window="hann",
            power=2.0,
            n_mels=N_MELS,
            htk=False,
            norm=None,
            fmin=0.0,
            fmax=FS / 2,
        )
        / scipy.signal.get_window("hann", N_FFT).sum() ** 2
    )
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_real_input_is_mirror_symmetric(fx):
    y = np.random.default_rng(2).standard_normal(4096).astype(np.complex64)
    m = fx.mel_power(y)
    np.testing.assert_allclose(m[:N_MELS][::-1], m[N_MELS:], rtol=1e-4)


@pytest.mark.parametrize("sign", [+1, -1])
def test_complex_tone_lands_on_its_side(fx, sign):
    f_hz = sign * 8_000.0
    x = np.exp(2j * np.pi * f_hz * np.arange(10_000) / FS).astype(np.complex64)
    m = fx.mel_power(x).mean(-1)
    peak_row = int(np.argmax(m))
    assert (peak_row >= N_MELS) == (sign > 0)
    # Rows run from −fs/2 to +fs/2, so ±f are mirror images of each other.
    expected = N_MELS + int(np.argmax(fx.mel @ np.eye(N_FFT // 2 + 1)[:, 8_000 * N_FFT // 50_000]))
    assert peak_row == (expected if sign > 0 else 2 * N_MELS - 1 - expected)


def test_bin_centred_tone_reads_amplitude_squared(fx):
    amplitude, k = 0.5, 40
    x = amplitude * np.exp(2j * np.pi * k * np.arange(2048) / N_FFT)
    p = fx.power(x.astype(np.complex64))
    np.testing.assert_allclose(p[:, k], amplitude**2, rtol=1e-5)


def test_full_scale_tone_is_0_dbfs_in_its_mel_band(fx):
    k = 40
    x = np.exp(2j * np.pi * k * np.arange(2048) / N_FFT).astype(np.complex64)
    p = fx.power(x)
    # dB of the power bin itself, through the same log as the features
    assert 10 * np.log10(p[0, k]) == pytest.approx(0.0, abs=1e-4)


def test_vectorized_over_receivers_equals_one_by_one(fx):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 5000)) + 1j * rng.standard_normal((3, 5000))).astype(np.complex64)
    batched = fx.dbfs(x)
    for r in range(3):
        np.testing.assert_allclose(batched[r], fx.dbfs(x[r]), rtol=1e-6)


def test_normalization_uses_fixed_scalars_not_sample_statistics(fx):
    x = 0.01 * np.exp(2j * np.pi * 0.1 * np.arange(4096)).astype(np.complex64)
    z_quiet = fx.features(x, mean_db=-80.0, std_db=10.0)
    z_loud = fx.features(10 * x, mean_db=-80.0, std_db=10.0)
    # 20 dB louder → +2 σ everywhere the tone dominates (absolute level is kept)
    peak = np.unravel_index(np.argmax(z_quiet), z_quiet.shape)
    assert z_loud[peak] - z_quiet[peak] == pytest.approx(2.0, abs=1e-3)
    np.testing.assert_allclose(fx.dbfs(x), z_quiet * 10.0 - 80.0, atol=1e-3)


@pytest.mark.parametrize(
    "sample_rate_hz, n_fft, n_mels",
    [(50_000.0, 512, 64), (48_000.0, 1024, 128), (12_000.0, 256, 40)],
)
def test_mel_filterbank_equals_librosa(sample_rate_hz, n_fft, n_mels):
    """Serving computes the filters without librosa (no numba compile in a fresh child); they
    must be librosa's, which stays the reference."""
    reference = librosa.filters.mel(
        sr=sample_rate_hz, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate_hz / 2.0,
        htk=False, norm=None,
    )  # fmt: skip
    ours = mel_filterbank(sample_rate_hz, n_fft, n_mels)
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-7)
