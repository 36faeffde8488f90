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


def mel_bands(matrix: np.ndarray, rows_per_band: int = 16) -> list:
    """``matrix`` ``[n_fft, rows]`` as ``(rows, bins, filters)`` bands: output rows ``rows``
    (slice) take ``filters`` ``[len(rows), len(bins)]`` times the power of the FFT bins ``bins``
    (slice). Mel filters are triangles: each bin feeds at most two neighbouring rows, so 16 rows
    read about 1/4 of the bins and the products cost ~1/8 of one dense ``[n_fft, 2·n_mels]``."""
    bands = []
    for start in range(0, matrix.shape[1], rows_per_band):
        rows = slice(start, min(start + rows_per_band, matrix.shape[1]))
        used = np.nonzero(matrix[:, rows].any(axis=1))[0]
        bins = slice(int(used[0]), int(used[-1]) + 1) if len(used) else slice(0, 1)
        bands.append((rows, bins, np.ascontiguousarray(matrix[bins, rows].T)))
    return bands


def num_frames(num_samples: int, n_fft: int, hop: int) -> int:
    """STFT frames without padding: ``1 + (N − n_fft) // hop``."""
    return 1 + (num_samples - n_fft) // hop


@dataclass
class FeatureExtractor:
    """Mirrored mel spectrogram of complex IQ at ``sample_rate_hz``.

    Rows run from −fs/2 to +fs/2 (``2·n_mels`` of them); columns are frames of ``n_fft``
    samples every ``hop`` samples. Power is normalized by ``(Σw)²`` so that a complex tone
    of amplitude A centred on a bin reads A² (full scale = 0 dBFS).

    One extractor serves one thread: frames are windowed into, and transformed in, a workspace
    of at most ``FRAMES_PER_CHUNK`` frames kept between calls (a fresh multi-megabyte array per
    call costs as much in page faults as the FFT itself).
    """

    sample_rate_hz: float
    n_fft: int
    hop: int
    n_mels: int
    window: np.ndarray = field(init=False, repr=False)
    mel: np.ndarray = field(init=False, repr=False)
    _window_iq: np.ndarray = field(init=False, repr=False)  # [2·n_fft], I and Q interleaved
    _mel_bands: list = field(init=False, repr=False)  # (rows, bins, filters) of the product
    _power_scale: np.float32 = field(init=False, repr=False)
    _spectrum: np.ndarray | None = field(default=None, init=False, repr=False)
    _power: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.window = periodic_hann(self.n_fft)
        self.mel = mel_filterbank(self.sample_rate_hz, self.n_fft, self.n_mels)
        self._window_iq = np.repeat(self.window, 2)
        self._power_scale = np.float32(1.0 / float(self.window.sum()) ** 2)
        # the power normalization rides on the filters: one multiply less per frame
        self._mel_bands = mel_bands(mirrored_mel_matrix(self.mel, self.n_fft) * self._power_scale)

    def power(self, iq: np.ndarray) -> np.ndarray:
        """Two-sided STFT power ``[..., T, n_fft]`` of complex ``iq`` ``[..., N]``."""
        frames = self._frames(iq)
        lead, num = frames.shape[:-2], frames.shape[-2]
        flat = frames.reshape(-1, num, 2 * self.n_fft)
        out = np.empty((flat.shape[0], num, self.n_fft), np.float32)
        for rows, cols, chunk in self._chunks(flat):
            out[rows, cols] = self._frame_power(chunk) * self._power_scale
        return out.reshape(*lead, num, self.n_fft)

    def mel_power(self, iq: np.ndarray) -> np.ndarray:
        """Mirrored mel power ``[..., 2·n_mels, T]``, rows from −fs/2 to +fs/2."""
        frames = self._frames(iq)
        lead, num = frames.shape[:-2], frames.shape[-2]
        flat = frames.reshape(-1, num, 2 * self.n_fft)
        out = np.empty((flat.shape[0], 2 * self.n_mels, num), np.float32)
        for rows, cols, chunk in self._chunks(flat):
            out[rows, :, cols] = self._mirrored_mel(self._frame_power(chunk))
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
        """Normalized features ``[..., 2·n_mels, T]`` of captures ``iq`` ``[..., N]`` and their
        mean power per FFT bin ``[..., n_fft]`` (for signal detection).

        Frames go through the workspace ``FRAMES_PER_CHUNK`` at a time — several captures per
        pass when they are short (one FFT call for a whole standard job), part of one when it is
        long (a long capture never holds its whole STFT)."""
        frames = self._frames(iq)
        lead, num = frames.shape[:-2], frames.shape[-2]
        flat = frames.reshape(-1, num, 2 * self.n_fft)
        out = np.empty((flat.shape[0], 2 * self.n_mels, num), np.float32)
        power_sum = np.zeros((flat.shape[0], self.n_fft), np.float64)
        for rows, cols, chunk in self._chunks(flat):
            power = self._frame_power(chunk)
            power_sum[rows] += power.sum(axis=-2)
            out[rows, :, cols] = self._mirrored_mel(power)
        np.add(out, np.float32(LOG_FLOOR), out=out)
        np.log(out, out=out)  # numpy's float32 log is vectorized, its log10 is not
        out *= np.float32(10.0 / np.log(10.0) / std_db)
        out -= np.float32(mean_db / std_db)
        mean_power = power_sum * (float(self._power_scale) / num)
        return out.reshape(*lead, 2 * self.n_mels, num), mean_power.reshape(*lead, self.n_fft)

    def _frames(self, iq: np.ndarray) -> np.ndarray:
        """Read-only view ``[..., T, 2·n_fft]`` of the frames, I and Q interleaved as float32."""
        x = np.ascontiguousarray(iq, dtype=np.complex64)
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"need at least n_fft={self.n_fft} samples, got {x.shape[-1]}")
        interleaved = x.view(np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(interleaved, 2 * self.n_fft, axis=-1)
        return windows[..., :: 2 * self.hop, :]

    @staticmethod
    def _chunks(frames: np.ndarray):
        """``(rows, cols, frames[rows, cols])`` covering ``frames`` ``[R, T, 2·n_fft]`` with at
        most ``FRAMES_PER_CHUNK`` frames each: whole captures together while they fit."""
        captures, num = frames.shape[:2]
        if num <= FRAMES_PER_CHUNK:
            step = FRAMES_PER_CHUNK // num
            for r in range(0, captures, step):
                rows = slice(r, min(r + step, captures))
                yield rows, slice(None), frames[rows]
            return
        for r in range(captures):
            for t in range(0, num, FRAMES_PER_CHUNK):
                cols = slice(t, min(t + FRAMES_PER_CHUNK, num))
                yield slice(r, r + 1), cols, frames[r : r + 1, cols]

    def _frame_power(self, frames: np.ndarray) -> np.ndarray:
        """``|FFT(w·x)|²`` (not yet scaled by ``1/(Σw)²``) of frames ``[..., K, 2·n_fft]``, in
        float32 throughout: windowed into the workspace, transformed in place, squared in place.
        The result is a view of the workspace, valid until the next call."""
        shape = frames.shape[:-1]
        count = int(np.prod(shape))
        spectrum, power = self._workspace(count)
        np.multiply(frames, self._window_iq, out=spectrum.view(np.float32).reshape(frames.shape))
        spectrum = scipy.fft.fft(spectrum, axis=-1, overwrite_x=True, workers=1)
        parts = spectrum.view(np.float32)
        np.multiply(parts, parts, out=parts)
        np.add(parts[:, 0::2], parts[:, 1::2], out=power)
        return power.reshape(*shape, self.n_fft)

    def _workspace(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of ``count`` frames of the kept spectrum and power buffers."""
        if self._spectrum is None or len(self._spectrum) < count:
            size = max(count, min(FRAMES_PER_CHUNK, 2 * count))
            self._spectrum = np.empty((size, self.n_fft), np.complex64)
            self._power = np.empty((size, self.n_fft), np.float32)
        return self._spectrum[:count], self._power[:count]

    def _mirrored_mel(self, power: np.ndarray) -> np.ndarray:
        """Mel power ``[..., 2·n_mels, K]`` of frame powers ``[..., K, n_fft]``, rows from −fs/2
        to +fs/2: one product per band of filters with the bins they cover (see
        :func:`mel_bands`), no gather of the negative bins."""
        lead, num = power.shape[:-2], power.shape[-2]
        flat = power.reshape(-1, self.n_fft)
        mel_t = np.empty((2 * self.n_mels, len(flat)), np.float32)
        for rows, bins, filters in self._mel_bands:
            np.matmul(filters, flat[:, bins].T, out=mel_t[rows])
        count = int(np.prod(lead))
        return np.moveaxis(mel_t.reshape(2 * self.n_mels, count, num), 0, -2).reshape(
            *lead, 2 * self.n_mels, num
        )
