"""Features of DESIGN §5: complex STFT → mirrored mel power → dBFS → fixed scalar normalization.

The same :class:`FeatureExtractor` runs in training and in serving, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LOG_FLOOR = 1e-12


def periodic_hann(n: int) -> np.ndarray:
    """The periodic (DFT-even) Hann window of length ``n``, as ``scipy.signal.get_window``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def mel_filterbank(sample_rate_hz: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney mel filters, unnormalized, 0 … fs/2: shape ``[n_mels, n_fft // 2 + 1]``."""
    import librosa  # heavy import, only needed once per extractor

    return librosa.filters.mel(
        sr=sample_rate_hz,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=0.0,
        fmax=sample_rate_hz / 2.0,
        htk=False,
        norm=None,
    ).astype(np.float32)


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
    _neg_bins: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.window = periodic_hann(self.n_fft)
        self.mel = mel_filterbank(self.sample_rate_hz, self.n_fft, self.n_mels)
        half = self.n_fft // 2
        self._neg_bins = (-np.arange(half + 1)) % self.n_fft

    def power(self, iq: np.ndarray) -> np.ndarray:
        """Two-sided STFT power ``[..., T, n_fft]`` of complex ``iq`` ``[..., N]``."""
        x = np.asarray(iq, dtype=np.complex64)
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"need at least n_fft={self.n_fft} samples, got {x.shape[-1]}")
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft, axis=-1)[
            ..., :: self.hop, :
        ]
        spectrum = np.fft.fft(frames * self.window, axis=-1)
        scale = np.float32(1.0 / float(self.window.sum()) ** 2)
        return (spectrum.real**2 + spectrum.imag**2).astype(np.float32) * scale

    def mel_power(self, iq: np.ndarray) -> np.ndarray:
        """Mirrored mel power ``[..., 2·n_mels, T]``, rows from −fs/2 to +fs/2."""
        p = self.power(iq)
        half = self.n_fft // 2
        positive = p[..., : half + 1] @ self.mel.T
        negative = p[..., self._neg_bins] @ self.mel.T
        both = np.concatenate([negative[..., ::-1], positive], axis=-1)
        return np.swapaxes(both, -1, -2)

    def dbfs(self, iq: np.ndarray) -> np.ndarray:
        """``10·log10(mel power + 1e-12)``: the un-normalized features, in dBFS."""
        return 10.0 * np.log10(self.mel_power(iq) + np.float32(LOG_FLOOR))

    def features(self, iq: np.ndarray, mean_db: float, std_db: float) -> np.ndarray:
        """Normalized features ``(dBFS − μ) / σ`` with the model's fixed scalar μ, σ."""
        return ((self.dbfs(iq) - np.float32(mean_db)) / np.float32(std_db)).astype(np.float32)
