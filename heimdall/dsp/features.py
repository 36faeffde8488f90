"""Features of DESIGN §5: complex STFT → mirrored mel power → dBFS → fixed scalar normalization.

The same :class:`FeatureExtractor` runs in training and in serving, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

LOG_FLOOR = 1e-12
FRAMES_PER_CHUNK = 1024  # bounds the STFT held at once: 1024 × n_fft complex64 = 4 MiB at 512


def periodic_hann(n: int) -> np.ndarray:
    """The periodic (DFT-even) Hann window of length ``n``, as ``scipy.signal.get_window``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def mel_filterbank(sample_rate_hz: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney mel filters, unnormalized, 0 … fs/2: shape ``[n_mels, n_fft // 2 + 1]``.

    The filters of ``librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False,
    norm=None)``, computed here with numpy (``tests/test_features.py`` checks them against
    librosa): librosa's first call compiles numba functions, seconds of a fresh worker child's
    time before its first job, so it stays off the serving path."""
    edges_hz = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate_hz / 2.0), n_mels + 2))
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate_hz)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    weights = np.zeros((n_mels, n_fft // 2 + 1), np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    return weights


# Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above
_MEL_LINEAR_HZ = 200.0 / 3.0
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_LINEAR_HZ
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz < _MEL_BREAK_HZ:
        return hz / _MEL_LINEAR_HZ
    return _MEL_BREAK + float(np.log(hz / _MEL_BREAK_HZ)) / _MEL_LOG_STEP


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return np.where(
        mel < _MEL_BREAK,
        _MEL_LINEAR_HZ * mel,
        _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (mel - _MEL_BREAK)),
    )


def mirrored_mel_matrix(mel: np.ndarray, n_fft: int) -> np.ndarray:
    """``[n_fft, 2·n_mels]`` such that two-sided power ``[K, n_fft]`` times it is the mirrored
    mel power: columns ``n_mels − 1 … 0`` are the filters on the negative frequencies (bin −k
    is FFT index ``(−k) mod n_fft``), columns ``n_mels …`` the filters on the positive ones;
    DC and Nyquist count on both sides."""
    n_mels, bins = mel.shape
    matrix = np.zeros((n_fft, 2 * n_mels), np.float32)
    matrix[:bins, n_mels:] = mel.T
    negative = (-np.arange(bins)) % n_fft
    matrix[negative, :n_mels] = mel.T[:, ::-1]
    return matrix


def num_frames(num_samples: int, n_fft: int, hop: int) -> int:
    """STFT frames without padding: ``1 + (N − n_fft) // hop``."""
    return 1 + (num_samples - n_fft) // hop


@dataclass
class FeatureExtractor:
    """Mirrored mel spectrogram of complex IQ at ``sample_rate_hz``.

    Rows run from −fs/2 to +fs/2 (``2·n_mels`` of them); columns are frames of ``n_fft``
    samples every ``hop`` samples. Power is normalized by ``(Σw)²`` so that a complex tone
    of amplitude A centred on a bin reads A² (full scale = 0 dBFS).
    """

    sample_rate_hz: float
    n_fft: int
    hop: int
    n_mels: int
    window: np.ndarray = field(init=False, repr=False)
    mel: np.ndarray = field(init=False, repr=False)
    _mirrored: np.ndarray = field(init=False, repr=False)  # [n_fft, 2·n_mels]
    _power_scale: np.float32 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.window = periodic_hann(self.n_fft)
        self.mel = mel_filterbank(self.sample_rate_hz, self.n_fft, self.n_mels)
        self._mirrored = mirrored_mel_matrix(self.mel, self.n_fft)
        self._power_scale = np.float32(1.0 / float(self.window.sum()) ** 2)

    def power(self, iq: np.ndarray) -> np.ndarray:
        """Two-sided STFT power ``[..., T, n_fft]`` of complex ``iq`` ``[..., N]``."""
        frames = self._frames(iq)
        return self._frame_power(frames.reshape(-1, self.n_fft)).reshape(frames.shape)

    def mel_power(self, iq: np.ndarray) -> np.ndarray:
        """Mirrored mel power ``[..., 2·n_mels, T]``, rows from −fs/2 to +fs/2."""
        frames = self._frames(iq)
        lead, num = frames.shape[:-2], frames.shape[-2]
        flat = frames.reshape(-1, num, self.n_fft)
        out = np.empty((flat.shape[0], 2 * self.n_mels, num), np.float32)
        for row in range(flat.shape[0]):
            for start in range(0, num, FRAMES_PER_CHUNK):
                chunk = self._frame_power(flat[row, start : start + FRAMES_PER_CHUNK])
                out[row, :, start : start + len(chunk)] = self._mirrored_mel(chunk).T
        return out.reshape(*lead, 2 * self.n_mels, num)

    def dbfs(self, iq: np.ndarray) -> np.ndarray:
        """``10·log10(mel power + 1e-12)``: the un-normalized features, in dBFS."""
        return 10.0 * np.log10(self.mel_power(iq) + np.float32(LOG_FLOOR))

    def features(self, iq: np.ndarray, mean_db: float, std_db: float) -> np.ndarray:
        """Normalized features ``(dBFS − μ) / σ`` with the model's fixed scalar μ, σ."""
        return ((self.dbfs(iq) - np.float32(mean_db)) / np.float32(std_db)).astype(np.float32)

    def capture_features(
        self, iq: np.ndarray, mean_db: float, std_db: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """One capture's normalized features ``[2·n_mels, T]`` and its mean power per FFT bin
        ``[n_fft]`` (for signal detection), computed ``FRAMES_PER_CHUNK`` frames at a time so
        a long capture never holds its whole STFT."""
        frames = self._frames(iq)
        num = frames.shape[0]
        out = np.empty((2 * self.n_mels, num), np.float32)
        power_sum = np.zeros(self.n_fft, np.float64)
        for start in range(0, num, FRAMES_PER_CHUNK):
            chunk = self._frame_power(frames[start : start + FRAMES_PER_CHUNK])
            power_sum += chunk.sum(axis=0, dtype=np.float64)
            out[:, start : start + len(chunk)] = self._mirrored_mel(chunk).T
        np.add(out, np.float32(LOG_FLOOR), out=out)
        np.log10(out, out=out)
        out *= np.float32(10.0 / std_db)
        out -= np.float32(mean_db / std_db)
        return out, power_sum / num

    def _frames(self, iq: np.ndarray) -> np.ndarray:
        """Read-only view ``[..., T, n_fft]`` of the frames (no copy)."""
        x = np.asarray(iq, dtype=np.complex64)
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"need at least n_fft={self.n_fft} samples, got {x.shape[-1]}")
        return np.lib.stride_tricks.sliding_window_view(x, self.n_fft, axis=-1)[..., :: self.hop, :]

    def _frame_power(self, frames: np.ndarray) -> np.ndarray:
        """``|FFT(w·x)|² / (Σw)²`` of frames ``[K, n_fft]``, in float32 throughout."""
        spectrum = scipy.fft.fft(frames * self.window, axis=-1, overwrite_x=True, workers=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        power *= self._power_scale
        return power

    def _mirrored_mel(self, power: np.ndarray) -> np.ndarray:
        """Mel power ``[K, 2·n_mels]`` of frame powers ``[K, n_fft]``, from −fs/2 to +fs/2:
        one product with the mirrored filter matrix (no gather of the negative bins)."""
        return power @ self._mirrored
