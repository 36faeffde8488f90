"""Pairwise time differences by generalized cross-correlation (DESIGN §11, step 2).

Receivers' LO offsets are removed first (their SNR spectra cross-correlated against the
strongest one's). The common window is cut into Hann sub-blocks. Per block and pair the
cross-spectrum, weighted by Knapp & Carter's maximum-likelihood GCC (coherence from both
receivers' per-bin SNR), gives a correlation whose peak is the delay; a coarse search sums
|correlation| over blocks (robust to a residual frequency offset), then each block's peak is
refined below one sample on a fine lag grid. Block delays are combined with outlier rejection;
their spread gives the statistical σ, to which both clocks' uncertainties and a systematic floor
(unresolved multipath, wider for narrow signals) are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, to_ecef
from heimdall.tdoa.align import Aligned

BLOCK = 4096  # samples per sub-block
MIN_BLOCKS = 4
BAND_OVER_FLOOR = 4.0  # a bin is signal when its mean power is this × the noise floor
FINE_POINTS = 41  # lag grid around each block's coarse peak
FINE_LOBE = 0.15  # its half-width, in main lobes (1/RMS bandwidth); at least 1 sample
MIN_QUALITY = 0.04  # pairs whose median normalized PHAT peak is below this are dropped
WEAK_PEAK = 0.5  # below this peak quality the statistical σ is scaled up by WEAK_PEAK/quality
LAG_MARGIN_S = 5e-6
HANN_EFFICIENCY = 0.375  # Σw²/N of a Hann window: the share of each block the correlation sees
MAX_LO_OFFSET_HZ = 1000.0  # receivers' LO differences searched
LO_FFT = 1 << 18
LO_SMOOTH_BINS = 3
ECHO_FLOOR_S = 4.0e-6  # ≈ RMS pair error with 0.5–20 µs, −20…−3 dB echoes; set for 95 % coverage
NARROW_FLOOR_S_HZ = 0.0038  # × 1/RMS bandwidth: CW (≈ 20 Hz) → ≈ 200 µs


@dataclass(frozen=True)
class PairDelay:
    """``delay_s`` = arrival at ``a`` − arrival at ``b``."""

    a: int  # row in the aligned set
    b: int
    delay_s: float
    sigma_s: float  # all of it: correlation, both receivers' clocks and floors
    stat_s: float  # the correlation's own part (independent between pairs)
    peak_quality: float
    blocks_used: int


def systematic_floor_s(rms_bandwidth_hz: float) -> float:
    """σ a pair delay cannot beat on real paths: an unresolved echo moves the peak by up to
    g·δ/(1+g) (µs for 0.5–20 µs echoes), and a narrow signal locates only its edges.
    Fitted on the TDoA simulator with multipath (``heimdall eval --method tdoa``)."""
    return float(np.hypot(ECHO_FLOOR_S, NARROW_FLOOR_S_HZ / max(rms_bandwidth_hz, 1.0)))


def pair_delays(
    aligned: Aligned, floor_s: float | None = None
) -> tuple[list[PairDelay], float, np.ndarray]:
    """Every pair's delay with σ, the signal's RMS bandwidth (Hz), and each receiver's own
    timing σ (s): its clock and half the systematic pair floor ``floor_s`` (default
    :func:`systematic_floor_s` of that bandwidth)."""
    rows = remove_lo_offsets(aligned)
    fs = aligned.rate_hz
    spectra = block_spectra(rows)  # [R, B, 2·BLOCK] complex64
    power = (np.abs(spectra) ** 2).mean(axis=1, dtype=np.float64)  # [R, F], over blocks
    bandwidth_hz = rms_bandwidth_hz(power, fs)
    freqs = np.fft.fftfreq(2 * BLOCK, 1 / fs)
    positions = to_ecef(
        [c.lat for c in aligned.captures], [c.lon for c in aligned.captures],
        [c.alt_m for c in aligned.captures],
    )  # fmt: skip
    clocks = np.array([c.clock_sigma_ns for c in aligned.captures]) * 1e-9
    if floor_s is None:
        floor_s = systematic_floor_s(bandwidth_hz)
    # Clock error and an unresolved echo belong to a receiver, not to a pair: every pair
    # with that receiver shares them (the solver weighs pairs with that covariance).
    receiver_s = np.sqrt(clocks**2 + floor_s**2 / 2)
    snr = bin_snr(power)
    pairs = []
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            baseline_s = np.linalg.norm(positions[a] - positions[b]) / SPEED_OF_LIGHT_M_S
            coherence = snr[a] * snr[b] / ((1 + snr[a]) * (1 + snr[b]))
            found = _pair(
                spectra[a], spectra[b], coherence, freqs, fs, baseline_s + LAG_MARGIN_S,
                max(1.0, FINE_LOBE * fs / bandwidth_hz),
            )  # fmt: skip
            if found is None:
                continue
            delay_s, stat_s, quality, used = found
            sigma = np.sqrt(stat_s**2 + receiver_s[a] ** 2 + receiver_s[b] ** 2)
            pairs.append(PairDelay(a, b, delay_s, float(sigma), stat_s, quality, used))
    return pairs, bandwidth_hz, receiver_s


def block_spectra(rows: np.ndarray) -> np.ndarray:
    """Zero-padded spectra of Hann-windowed ``BLOCK``-sample blocks of every row (leakage
    would swamp PHAT): ``[R, B, 2·BLOCK]`` complex64, one row at a time (bounded memory)."""
    count = rows.shape[1] // BLOCK
    if count < MIN_BLOCKS:  # short windows: overlapping blocks so the spread still means something
        step = max((rows.shape[1] - BLOCK) // (MIN_BLOCKS - 1), 1)
        starts = [min(i * step, rows.shape[1] - BLOCK) for i in range(MIN_BLOCKS)]
    else:
        starts = [i * BLOCK for i in range(count)]
    window = np.hanning(BLOCK).astype(np.float32)
    spectra = np.empty((rows.shape[0], len(starts), 2 * BLOCK), np.complex64)
    for r, row in enumerate(rows):
        blocks = np.stack([row[s : s + BLOCK] for s in starts]) * window
        spectra[r] = scipy.fft.fft(blocks, n=2 * BLOCK, axis=-1, workers=1)
    return spectra


def rms_bandwidth_hz(power: np.ndarray, fs: float) -> float:
    """RMS bandwidth of the bins where the mean power ``[R, F]`` (each receiver scaled to its
    own floor) is signal."""
    floors = np.median(power, axis=1, keepdims=True)
    smoothed = np.convolve((power / floors).mean(0), np.ones(9) / 9, mode="same")
    mask = smoothed > BAND_OVER_FLOOR
    if mask.sum() < 8:
        mask = smoothed >= np.sort(smoothed)[-8]
    freqs = np.fft.fftfreq(power.shape[-1], 1 / fs)
    weights = smoothed * mask
    centre = (weights * freqs).sum() / weights.sum()
    rms = float(np.sqrt((weights * (freqs - centre) ** 2).sum() / weights.sum()))
    return max(rms, fs / power.shape[-1])


def bin_snr(power: np.ndarray) -> np.ndarray:
    """Per receiver and bin, the SNR of the block-averaged power ``[R, F]`` against a floor
    taken as the 20th percentile of the bins (signals fill less than 80 % of the band)."""
    floor = np.percentile(power, 20, axis=1, keepdims=True)
    return np.clip(power / np.maximum(floor, 1e-30) - 1.0, 0.0, 1e6)


def remove_lo_offsets(aligned: Aligned, max_offset_hz: float = MAX_LO_OFFSET_HZ) -> np.ndarray:
    """Rows shifted in frequency onto the strongest receiver's LO.

    Every receiver hears the same signal, so their spectra are copies shifted by the LO
    differences: the peak of the cross-correlation of SNR spectra (long FFT, sub-bin parabola)
    gives each receiver's offset against the reference row.
    """
    rows = aligned.rows
    use = min(rows.shape[1], LO_FFT)
    n = 1 << int(np.ceil(np.log2(use)))
    windowed = rows[:, :use] * np.hanning(use).astype(np.float32)[None, :]
    power = np.abs(scipy.fft.fft(windowed, n=n, axis=-1, workers=1)).astype(np.float64) ** 2
    kernel = np.ones(LO_SMOOTH_BINS) / LO_SMOOTH_BINS
    power = np.apply_along_axis(lambda p: np.convolve(p, kernel, mode="same"), 1, power)
    floor = np.percentile(power, 20, axis=1, keepdims=True)
    snr = np.clip(power / np.maximum(floor, 1e-30) - 1.0, 0.0, None)
    reference = int(np.argmax(snr.sum(1)))
    bin_hz = aligned.rate_hz / n
    max_lag = min(int(max_offset_hz / bin_hz), n // 2 - 1)
    lags = np.arange(-max_lag, max_lag + 1)
    ref_f = np.fft.fft(snr[reference])
    shifts = np.zeros(len(rows))
    for r in range(len(rows)):
        if r == reference:
            continue
        corr = np.real(np.fft.ifft(np.fft.fft(snr[r]) * np.conj(ref_f)))[lags % n]
        k = int(np.argmax(corr))
        shifts[r] = (lags[k] + _parabola(corr, k)) * bin_hz
    t = np.arange(rows.shape[1]) / aligned.rate_hz
    return rows * np.exp(-2j * np.pi * shifts[:, None] * t[None, :]).astype(np.complex64)


def _pair(xa, xb, coherence, freqs, fs, max_lag_s, fine_samples):
    """(delay, σ_stat, quality, blocks) of one pair from per-block spectra ``[B, F]``.

    Weighting is Knapp & Carter's maximum-likelihood GCC: PHAT (1/|G|) times
    |γ|²/(1 − |γ|²), the coherence taken from both receivers' per-bin SNR, so bins without
    signal weigh nothing and strong bins do not drown the rest. The integer-lag peak of a lobe
    many samples wide wanders with noise by more than a sample, so each block's peak is looked
    for over ±``fine_samples`` around it. σ is the larger of the blocks' spread and Carter's
    bound (:func:`ml_gcc_sigma_s`)."""
    cross = xa * np.conj(xb)
    ml = coherence / np.maximum(1.0 - coherence, 1e-6)
    weights = ml / np.maximum(np.abs(cross), 1e-30)
    whitened = cross * weights
    corr = np.fft.ifft(whitened, axis=-1)  # lag l at index l mod F
    size = corr.shape[-1]
    max_lag = min(int(np.ceil(max_lag_s * fs)) + 1, size // 2 - 1)
    lags = np.arange(-max_lag, max_lag + 1)
    magnitude = np.abs(corr[:, lags % size])  # [B, lags]
    coarse = lags[int(np.argmax(magnitude.sum(0)))]
    norm = np.maximum((np.abs(whitened)).sum(-1), 1e-30)  # per block: a perfect peak reads 1
    delays, qualities = [], []
    fine = coarse + np.linspace(-fine_samples, fine_samples, FINE_POINTS)
    active = ml > ml.max() * 1e-4  # bins that weigh anything: the rest add nothing
    steer = np.exp(2j * np.pi * freqs[None, active] * fine[:, None] / fs)  # [fine, active]
    table = np.abs(steer @ whitened[:, active].T) / norm[None, :]  # [fine, blocks]
    for values in table.T:
        k = int(np.argmax(values))
        delays.append(fine[k] + _parabola(values, k) * (fine[1] - fine[0]))
        qualities.append(float(values[k]))
    delays = np.array(delays) / fs
    quality = float(np.median(qualities))
    if quality < MIN_QUALITY:
        return None
    centre = np.median(delays)
    spread = 1.4826 * np.median(np.abs(delays - centre))
    keep = np.abs(delays - centre) <= max(3 * spread, 0.05 / fs)
    used = delays[keep]
    spread_s = np.std(used, ddof=1) / np.sqrt(len(used)) if len(used) > 1 else 1.0 / fs
    # a weak peak's block spread understates its error (few blocks, heavy tails)
    spread_s = spread_s / min(1.0, quality / WEAK_PEAK)
    stat = max(spread_s, ml_gcc_sigma_s(ml, freqs, len(used)))
    return float(used.mean()), float(max(stat, 1e-9)), quality, int(keep.sum())


def ml_gcc_sigma_s(ml: np.ndarray, freqs: np.ndarray, blocks: int) -> float:
    """Carter's σ of the ML-GCC delay: [2·blocks·Σ(2π(f − f̄))²·|γ|²/(1 − |γ|²)]^(−1/2),
    the sum over one block's independent bins (the zero-padded grid holds each twice) and
    weighted by the Hann window's equivalent-noise loss. With a handful of blocks the
    spread of block delays can come out small by chance; this cannot."""
    weight = ml.sum()
    if weight <= 0:
        return float("inf")
    centre = (ml * freqs).sum() / weight
    information = 2 * blocks * (ml * (2 * np.pi * (freqs - centre)) ** 2).sum() / 2
    return float(1.0 / np.sqrt(max(information * HANN_EFFICIENCY, 1e-300)))


def _parabola(values: np.ndarray, k: int) -> float:
    """Vertex offset (in grid steps) of the parabola through values[k-1..k+1]."""
    if k == 0 or k == len(values) - 1:
        return 0.0
    left, mid, right = values[k - 1], values[k], values[k + 1]
    denom = left - 2 * mid + right
    return 0.0 if denom == 0 else float(0.5 * (left - right) / denom)
