"""Pairwise time differences by generalized cross-correlation (DESIGN §11, step 2).

Receivers' LO offsets are removed first (their SNR spectra cross-correlated against the
strongest one's). The common window is cut into Hann sub-blocks. Spectral lines (carriers,
pilots) and the bins their leakage dominates are left out of every correlation: a line's
cross-spectrum phase is the carrier phase difference (receiver LO phases, sky-wave fading),
not a group delay, and with the weight its SNR earns it would pull the peak to wherever the
modulation's correlation lines up with that phase (:func:`spectral_lines`). Per block and pair
the cross-spectrum, weighted by Knapp & Carter's maximum-likelihood GCC (coherence from both
receivers' SNR, each its gain × the emission's spectral shape: :func:`shared_snr`), gives a
correlation whose peak is the delay; a coarse search sums |correlation| over blocks (robust to
a residual frequency offset), then each block's peak is refined below one sample on a fine lag
grid. Block delays are combined with outlier rejection, each weighed by its own peak; their
spread gives the statistical σ, to which both clocks' uncertainties and a systematic floor
(unresolved multipath, wider for narrow signals) are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft
from scipy import stats
from scipy.ndimage import median_filter, uniform_filter1d

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, to_ecef
from heimdall.schemas.errors import NoSignal
from heimdall.tdoa.align import Aligned

BLOCK = 4096  # samples per sub-block
MIN_BLOCKS = 4
MIN_SIGNAL_BINS = 8  # a receiver hears a modulation when this many bins (lines out) stand out
BAND_OVER_FLOOR = 4.0  # a bin is signal when its mean power is this × the noise floor
FINE_POINTS = 41  # lag grid around each block's coarse peak
MAIN_LOBE = 0.5  # a correlation's main lobe, ± this / RMS bandwidth
FINE_LOBE = MAIN_LOBE  # the grid's half-width (at least 1 sample): the whole main lobe, where
# a rival's σ takes over; with 0.15 a weak pair's blocks could not stray from the summed peak,
# so their spread could not show that peak's own error (hundreds of µs in a 0.2 s capture)
MIN_QUALITY = 0.04  # pairs whose median normalized PHAT peak is below this are dropped
RIVAL_FROM = 0.6  # a rival correlation peak this high (relative) starts to widen σ
NOISE_STRIDE = 4
NOISE_PERCENTILE = 0.2  # the noise floor: a quantile of the bins (signals fill less than 80 %)
PEAK_Z = 4.0  # … and pairs whose peak is not this many σ above the lags no path can have
WEAK_PEAK = 0.7  # below this peak quality the statistical σ is scaled up by WEAK_PEAK/quality
# (0.5 before noise bins stopped weighing: a weak pair's peak now reads 1.3–2× higher)
LAG_MARGIN_S = 5e-6
SPREAD_CONFIDENCE = 0.975  # upper quantile of a 95 % two-sided interval (block spread's σ)
BLOCK_QUALITY_RANGE = (1e-3, 0.99)  # a block's peak quality as its weight sees it: no block
# weighs nothing, and none weighs more than 49 (q = 0.99) however clean its peak
HANN_EFFICIENCY = 0.375  # Σw²/N of a Hann window: the share of each block the correlation sees
MAX_LO_OFFSET_HZ = 1000.0  # receivers' LO differences searched
LO_FFT = 1 << 18
LO_SMOOTH_BINS = 3
ECHO_FLOOR_S = 3.2e-6  # below 30 MHz, with NARROW_FLOOR_S_HZ (fitted with the sky-wave terms)
NARROW_FLOOR_S_HZ = 0.003  # × 1/RMS bandwidth below 30 MHz: CW (≈ 20 Hz) → ≈ 150 µs
VHF_ECHO_FLOOR_S = 3.5e-6  # echoes 0.5–20 µs, −20…−3 dB: with the next, cov95 0.89–0.97 but CW
VHF_NARROW_FLOOR_S_HZ = 0.0014  # × 1/RMS bandwidth: NFM (≈ 2 kHz) 3.56 µs ≈ 3.2 ⊕ 0.003/B as
# before, the time signal (≈ 400 Hz) 4.9 µs instead of 7.9 (systematic_floor_s)
SKY_FLOOR_S_HZ = 0.015  # × 1/RMS bandwidth: a sky wave's pull (MF/HF); hf cov95 0.93–0.95
SKY_WAVE_BOTTOM_HZ = 300_000.0
SKY_WAVE_TOP_HZ = 30_000_000.0
RECEIVER_BIAS_FLOOR_S = 2.5e-6  # a pair of receivers' fixed biases, ±3 µs each (below 30 MHz)
SKY_FADING_S = 4.0  # a sky wave's fading period: 1/mean |Doppler| for Doppler uniform in ±0.5 Hz
LINE_BACKGROUND_BINS = 129  # a line is judged against the median of this many bins around it
LINE_OVER_BACKGROUND = 4.0  # a line's peak stands this far above that background …
LINE_SKIRT_BINS = 6  # … and this many bins away (past the Hann main lobe, ±4 padded bins)
LINE_CONTRAST = 20.0  # it has fallen by this much: narrower than the block's resolution
LINE_DOMINANT_SHARE = 0.2  # a line holding this share of the signal's power is left out …
LEAK_SHARE = 0.25  # … with the bins where its leakage is over this share of the rest
MAIN_LOBE_BINS = 4  # the Hann window's main lobe, ± padded bins
SHAPE_SMOOTH_BINS = 9  # where the emission is: SNR over this running mean (≈ 2.7 independent bins)
SHAPE_FALSE_BINS = 0.1  # … above what noise alone reads there in this many bins per spectrum


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


def systematic_floor_s(
    rms_bandwidth_hz: float, frequency_hz: float = 1e9, duration_s: float = 0.0
) -> float:
    """σ a pair delay cannot beat on real paths, for the band the correlation used and a
    capture ``duration_s`` long.

    An unresolved echo moves the peak by up to g·δ/(1+g) (µs for the 0.5–20 µs echoes of
    VHF); a narrow signal locates only its edges (∝ 1/B). At VHF the two are refitted: the
    floor below 30 MHz (3.2 µs ⊕ 0.003/B) held the error of 0.2 s time-signal pairs of peak
    quality over 0.8 (B ≈ 400 Hz) within 0.674 σ 71 % of the time, this one 62 %
    (``scripts/pair_calibration.py --samples 10000 reference 100 777001 time-signal``); at
    B ≈ 1–2.6 kHz (NFM, FSK, AM, FM + carrier) it moved by −12 to +4 %.

    Below 30 MHz receivers carry fixed biases of a few µs (antenna, cable, filters), and a sky
    wave 50–500 µs late, unresolved, shifts the peak by a share of the main lobe (∝ 1/B): from
    300 kHz to 30 MHz a term of its own (comparable at night); at LF, where the ground wave wins
    by day (D-layer absorption), the narrow term fitted with it in (halved there too, 40
    three-station 30 s sets held their truth 31 times, not 33: ``scripts/lf_time_signal_sets.py
    40 2021``). The sky wave's pull turns with its fading phase, so a capture of N fading periods
    sees ~1/√N of it (:func:`sky_fading_average`): below 30 MHz both 1/B terms shrink with the
    capture's length. Fitted on the TDoA simulator with all of these (``heimdall eval --method
    tdoa``; 30 s LF sets: ``scripts/lf_time_signal_sets.py``).
    At night, or with a sky wave that fades slower than ``SKY_FADING_S``, the ellipses are too
    small (README)."""
    bandwidth = max(rms_bandwidth_hz, 1.0)
    if frequency_hz >= SKY_WAVE_TOP_HZ:
        return float(np.hypot(VHF_ECHO_FLOOR_S, VHF_NARROW_FLOOR_S_HZ / bandwidth))
    band_limited = [NARROW_FLOOR_S_HZ / bandwidth]
    if frequency_hz >= SKY_WAVE_BOTTOM_HZ:
        band_limited.append(SKY_FLOOR_S_HZ / bandwidth)
    terms = [ECHO_FLOOR_S, RECEIVER_BIAS_FLOOR_S]
    terms += [t * sky_fading_average(duration_s) for t in band_limited]
    return float(np.sqrt(np.sum(np.square(terms))))


def sky_fading_average(duration_s: float) -> float:
    """The share of a fading sky wave's pull left in a capture ``duration_s`` long:
    √(period / duration) once it spans more than one fading period ``SKY_FADING_S``.
    Measured on the simulator (LF time signal, median pair-delay error): the sky wave doubles
    it in 1–4 s captures (12.8 against 6.4 µs without) and hardly changes it in 30 s ones
    (3.9 against 3.4 µs)."""
    return float(np.sqrt(SKY_FADING_S / max(duration_s, SKY_FADING_S)))


def pair_delays(
    aligned: Aligned, floor_s: float | None = None
) -> tuple[list[PairDelay], float, np.ndarray]:
    """Every pair's delay with σ, the signal's RMS bandwidth (Hz), and each receiver's own
    timing σ (s): its clock and half the systematic pair floor ``floor_s`` (default
    :func:`systematic_floor_s` of that bandwidth, the tuned frequency and the window's length)."""
    rows = remove_lo_offsets(aligned)
    fs = aligned.rate_hz
    spectra = block_spectra(rows)  # [R, B, 2·BLOCK] complex64
    power = (np.abs(spectra) ** 2).mean(axis=1, dtype=np.float64)  # [R, F], over blocks
    # the band actually used: lines out, as if only noise were there
    heard = (over_floor(power) > BAND_OVER_FLOOR).sum(axis=1) >= MIN_SIGNAL_BINS
    power = np.where(spectral_lines(power), noise_floor(power), power)
    # Where receivers heard something and all of it was lines, nothing carries a delay. (A
    # weak receiver whose modulation does not stand out per bin still correlates: its pairs'
    # peak quality decides.)
    ratio = over_floor(power)
    modulated = (ratio > BAND_OVER_FLOOR).sum(axis=1) >= MIN_SIGNAL_BINS
    if heard.any() and not modulated.any():
        raise NoSignal(
            "time differences: the receivers hear only spectral lines (a bare carrier's phase "
            "carries no delay)"
        )
    bandwidth_hz = rms_bandwidth_hz(ratio[modulated] if modulated.any() else ratio, fs)
    freqs = np.fft.fftfreq(2 * BLOCK, 1 / fs)
    positions = to_ecef(
        [c.lat for c in aligned.captures], [c.lon for c in aligned.captures],
        [c.alt_m for c in aligned.captures],
    )  # fmt: skip
    clocks = np.array([c.clock_sigma_ns for c in aligned.captures]) * 1e-9
    if floor_s is None:
        floor_s = systematic_floor_s(bandwidth_hz, aligned.center_frequency_hz, aligned.duration_s)
    # Clock error and an unresolved echo belong to a receiver, not to a pair: every pair
    # with that receiver shares them (the solver weighs pairs with that covariance).
    receiver_s = np.sqrt(clocks**2 + floor_s**2 / 2)
    snr = shared_snr(power, equivalent_blocks(rows.shape[1]))  # lines replaced: they weigh nothing
    # below 30 MHz a fading sky wave sets which blocks peak best (block_weights): not weighed
    weigh_blocks = aligned.center_frequency_hz >= SKY_WAVE_TOP_HZ
    pairs = []
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            baseline_s = np.linalg.norm(positions[a] - positions[b]) / SPEED_OF_LIGHT_M_S
            coherence = snr[a] * snr[b] / ((1 + snr[a]) * (1 + snr[b]))
            found = _pair(
                spectra[a], spectra[b], coherence, freqs, fs, baseline_s + LAG_MARGIN_S,
                max(1.0, FINE_LOBE * fs / bandwidth_hz), max(2.0, MAIN_LOBE * fs / bandwidth_hz),
                weigh_blocks,
            )  # fmt: skip
            if found is None:
                continue
            delay_s, stat_s, quality, used = found
            sigma = np.sqrt(stat_s**2 + receiver_s[a] ** 2 + receiver_s[b] ** 2)
            pairs.append(PairDelay(a, b, delay_s, float(sigma), stat_s, quality, used))
    return pairs, bandwidth_hz, receiver_s


def spectral_lines(power: np.ndarray) -> np.ndarray:
    """Bins ``[F]`` that a dominant spectral line or its window leakage holds at any receiver.

    A line is a local maximum of the block-averaged power ``[R, F]`` that stands
    ``LINE_OVER_BACKGROUND`` above the median of its neighbourhood and has fallen by
    ``LINE_CONTRAST`` ``LINE_SKIRT_BINS`` away (narrower than a block resolves). It is left out
    when its main lobe holds ``LINE_DOMINANT_SHARE`` of the signal's power above the floor: a
    carrier. Weaker lines stay: a set of them (the sidebands of tones) has phases whose
    differences are the group delay, and none of them can dominate the correlation. Around a
    line left out, every bin where the Hann window's leakage of it is more than ``LEAK_SHARE``
    of the neighbourhood's level goes too; the modulation around a carrier (AM sidebands, a
    time signal's phase chips) stays in."""
    background = median_filter(power, size=(1, LINE_BACKGROUND_BINS), mode="wrap")
    size = power.shape[-1]
    response = _window_response(size)
    offsets = np.arange(size)
    excluded = np.zeros(size, bool)
    above = np.maximum(power - noise_floor(power), 0.0)
    for p, bg, signal in zip(power, background, above, strict=True):
        peak = (p >= np.roll(p, 1)) & (p >= np.roll(p, -1)) & (p > LINE_OVER_BACKGROUND * bg)
        narrow = (np.roll(p, LINE_SKIRT_BINS) < p / LINE_CONTRAST) & (
            np.roll(p, -LINE_SKIRT_BINS) < p / LINE_CONTRAST
        )
        total = signal.sum()
        for k in np.flatnonzero(peak & narrow):
            lobe = np.arange(k - MAIN_LOBE_BINS, k + MAIN_LOBE_BINS + 1) % size
            if np.maximum(p[lobe] - bg[lobe], 0.0).sum() < LINE_DOMINANT_SHARE * total:
                continue
            leakage = (p[k] - bg[k]) * response[(offsets - k) % size]
            excluded |= leakage > LEAK_SHARE * bg
    return excluded


@cache
def _window_response(size: int) -> np.ndarray:
    """The Hann block's power response at each offset of the ``size``-bin grid, relative to its
    peak, the worst over where between bins the line falls."""
    fine = 4
    window = np.hanning(BLOCK)
    response = np.abs(np.fft.fft(window, n=size * fine)) ** 2
    response /= response[0]
    # a bin at offset m sees the line anywhere within ±½ bin of m: the largest response there
    shifted = np.stack([np.roll(response, s) for s in range(-fine // 2, fine // 2 + 1)])
    return shifted.max(axis=0)[::fine]


def block_starts(length: int) -> list[int]:
    """First sample of each ``BLOCK``-sample block of a ``length``-sample window: back to back,
    or ``MIN_BLOCKS`` overlapping ones when the window is shorter (so the spread still means
    something)."""
    count = length // BLOCK
    if count >= MIN_BLOCKS:
        return [i * BLOCK for i in range(count)]
    step = max((length - BLOCK) // (MIN_BLOCKS - 1), 1)
    return [min(i * step, length - BLOCK) for i in range(MIN_BLOCKS)]


def equivalent_blocks(length: int) -> float:
    """How many independent blocks the average of :func:`block_starts`' Hann blocks' power
    is worth for white noise (Welch 1967: overlapping blocks' powers correlate by the square
    of their windows' overlap): its Gamma shape."""
    starts = block_starts(length)
    window = np.hanning(BLOCK)
    energy = float(window @ window)
    count = len(starts)
    spread = 1.0
    for i in range(count):
        for j in range(i + 1, count):
            shift = starts[j] - starts[i]
            if shift >= BLOCK:  # starts ascend: no later block overlaps block i either
                break
            overlap = float(window[shift:] @ window[: BLOCK - shift]) / energy
            spread += 2 * overlap**2 / count
    return count / spread


def block_spectra(rows: np.ndarray) -> np.ndarray:
    """Zero-padded spectra of Hann-windowed ``BLOCK``-sample blocks of every row (leakage
    would swamp PHAT): ``[R, B, 2·BLOCK]`` complex64, one row at a time (bounded memory)."""
    starts = block_starts(rows.shape[1])
    window = np.hanning(BLOCK).astype(np.float32)
    spectra = np.empty((rows.shape[0], len(starts), 2 * BLOCK), np.complex64)
    for r, row in enumerate(rows):
        blocks = np.stack([row[s : s + BLOCK] for s in starts]) * window
        spectra[r] = scipy.fft.fft(blocks, n=2 * BLOCK, axis=-1, workers=1)
    return spectra


def over_floor(power: np.ndarray) -> np.ndarray:
    """``[R, F]``: the block-averaged power over each receiver's median bin, smoothed over 9
    bins (a bin is signal where this exceeds ``BAND_OVER_FLOOR``)."""
    floors = np.median(power, axis=1, keepdims=True)
    kernel = np.ones(9) / 9
    return np.stack(
        [np.convolve(p / f, kernel, mode="same") for p, f in zip(power, floors, strict=True)]
    )


def rms_bandwidth_hz(ratio: np.ndarray, fs: float) -> float:
    """RMS bandwidth of the bins where the receivers' mean :func:`over_floor` ``ratio``
    ``[R, F]`` is signal."""
    smoothed = ratio.mean(0)
    mask = smoothed > BAND_OVER_FLOOR
    if mask.sum() < 8:
        mask = smoothed >= np.sort(smoothed)[-8]
    freqs = np.fft.fftfreq(ratio.shape[-1], 1 / fs)
    weights = smoothed * mask
    centre = (weights * freqs).sum() / weights.sum()
    rms = float(np.sqrt((weights * (freqs - centre) ** 2).sum() / weights.sum()))
    return max(rms, fs / ratio.shape[-1])


def noise_floor(power: np.ndarray) -> np.ndarray:
    """Per receiver ``[R, 1]``, the 20th percentile of the block-averaged power ``[R, F]``
    (signals fill less than 80 % of the band)."""
    return np.percentile(power, 100 * NOISE_PERCENTILE, axis=1, keepdims=True)


def bin_snr(power: np.ndarray, blocks: float) -> np.ndarray:
    """Per receiver and bin, the SNR of the power ``[R, F]`` averaged over ``blocks``
    independent blocks, over the mean noise power.

    A noise bin's block average is Gamma-distributed (shape ``blocks``), so the
    :func:`noise_floor` percentile lies below the noise's mean (0.57 of it for 4 blocks): taken
    as the mean, it would read every noise bin as SNR ≈ 0.7 on average and give thousands of
    them an ML weight, whose wide-band ripple moves a narrow signal's broad peak (the time
    signal's pair errors were ~10× Carter's σ)."""
    return np.clip(excess_snr(power, blocks), 0.0, 1e6)


def excess_snr(power: np.ndarray, shape: float) -> np.ndarray:
    """Per receiver and bin, the power ``[R, F]`` over the noise's mean power, minus 1:
    unclipped, so that noise bins average to 0 (:func:`mean_noise_power`)."""
    return power / mean_noise_power(power, shape) - 1.0


def mean_noise_power(power: np.ndarray, shape: float) -> np.ndarray:
    """Per receiver ``[R, 1]``, the noise's mean power: the :func:`noise_floor` percentile over
    where it falls for a Gamma of ``shape`` (the independent powers each bin averages)."""
    quantile = gamma_mean_quantile(max(float(shape), 1.0), NOISE_PERCENTILE)
    return np.maximum(noise_floor(power) / quantile, 1e-30)


@cache
def gamma_mean_quantile(shape: float, quantile: float) -> float:
    """The ``quantile`` of the mean of ``shape`` independent unit-mean exponential powers
    (Gamma(shape, 1/shape)): computed once per block count, not per job."""
    return float(stats.gamma(shape, scale=1.0 / shape).ppf(quantile))


def shared_snr(power: np.ndarray, blocks: float) -> np.ndarray:
    """Per receiver and bin ``[R, F]``, the SNR as the receiver's gain × the emission's
    spectral shape, from the power ``[R, F]`` averaged over ``blocks`` independent blocks.

    Every receiver hears one emission, its spectrum scaled by the path. A weak receiver's own
    per-bin SNR is mostly noise: of a 4-block average, 5 % of the noise bins read over 1 and
    43 % over 0, so its pairs weighed thousands of noise bins across the band, whose ripple moved
    the peak and whose frequencies made Carter's σ absurdly small (0.8 µs for a 0.2 s
    time-signal pair 140 µs off). So the shape is the strongest receiver's own SNR
    (:func:`bin_snr`) in the bins where, averaged over ``SHAPE_SMOOTH_BINS``, it stands above
    what noise reads in ``SHAPE_FALSE_BINS`` of a spectrum's bins, zero elsewhere (noise bins
    let in far from the band weigh most: at 0.1 % of the bins, a dozen, a weak pair's Carter σ
    read 0.5–0.7 of its truth); each receiver's gain is the least-squares fit of its unclipped
    SNR to that shape (1 for the strongest). Falls back to :func:`bin_snr` where no bin stands
    out. A band only the strongest receiver hears (its own interference) is weighed at the
    others too: noise there, no bias."""
    raw = excess_snr(power, blocks)  # unclipped: its noise averages out in the gains' fit
    shape = max(float(blocks), 1.0) * smoothing_gain(SHAPE_SMOOTH_BINS)
    smoothed = uniform_filter1d(power, SHAPE_SMOOTH_BINS, axis=-1, mode="wrap")
    smoothed_snr = excess_snr(smoothed, shape)
    best = int(np.argmax(np.clip(smoothed_snr, 0.0, None).sum(axis=1)))
    quantile = 1.0 - SHAPE_FALSE_BINS / power.shape[-1]
    noise_reads = gamma_mean_quantile(shape, quantile) - 1.0
    own = np.clip(raw, 0.0, None)  # each receiver's own per-bin SNR (bin_snr's, uncapped)
    template = np.where(smoothed_snr[best] > noise_reads, own[best], 0.0)
    energy = float(template @ template)
    if energy <= 0.0:
        return np.minimum(own, 1e6)
    gains = np.clip(raw @ template / energy, 0.0, None)
    return np.minimum(gains[:, None] * template[None, :], 1e6)


@cache
def smoothing_gain(bins: int) -> float:
    """How many independent noise powers a running mean of ``bins`` bins of the zero-padded
    Hann spectrum holds: neighbouring bins' powers correlate by ρ², ρ = |DFT of w²| / Σw²."""
    w2 = np.hanning(BLOCK) ** 2
    rho = np.abs(np.fft.fft(w2, n=2 * BLOCK)) / w2.sum()
    lags = np.arange(-(bins - 1), bins)
    variance = np.sum((bins - np.abs(lags)) * rho[lags % (2 * BLOCK)] ** 2) / bins**2
    return float(1.0 / variance)


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


def _pair(xa, xb, coherence, freqs, fs, max_lag_s, fine_samples, lobe_samples, weigh_blocks=True):
    """(delay, σ_stat, quality, blocks) of one pair from per-block spectra ``[B, F]``.

    Weighting is Knapp & Carter's maximum-likelihood GCC: PHAT (1/|G|) times
    |γ|²/(1 − |γ|²), the coherence taken from both receivers' SNR (:func:`shared_snr`), so bins
    without signal weigh nothing and strong bins do not drown the rest. The integer-lag peak of
    a lobe many samples wide wanders with noise by more than a sample, so each block's peak is
    looked for over ±``fine_samples`` (half a main lobe) around it: free enough that a weak
    pair's blocks show how far noise moves the peak. The delay is the kept blocks' mean, each
    weighed by its own peak (:func:`block_weights`; the peak of their summed magnitudes, tried
    instead, was worse on 30 s LF sets, and so were, on 0.2 s captures, the peak of their
    coherent sum and that sum's lobe as the coarse peak); σ is the largest of the blocks'
    weighted spread, Carter's bound (:func:`ml_gcc_sigma_s`) and a rival peak's
    (:func:`_rival_s`)."""
    cross = xa * np.conj(xb)
    ml = coherence / np.maximum(1.0 - coherence, 1e-6)
    weights = ml / np.maximum(np.abs(cross), 1e-30)
    whitened = cross * weights
    corr = np.fft.ifft(whitened, axis=-1)  # lag l at index l mod F
    size = corr.shape[-1]
    max_lag = min(int(np.ceil(max_lag_s * fs)) + 1, size // 2 - 1)
    lags = np.arange(-max_lag, max_lag + 1)
    window = np.abs(corr[:, lags % size]).sum(0)  # over blocks
    peak = int(np.argmax(window))
    coarse = lags[peak]
    # lags no path can have hold only noise (and far sidelobes): the peak must stand out of
    # them, or it is the largest of the noise in the window (every NOISE_STRIDE-th such lag)
    probe = np.arange(max_lag + 1, size - max_lag, NOISE_STRIDE)
    outside = np.abs(corr[:, probe]).sum(0)
    if (window[peak] - outside.mean()) < PEAK_Z * max(outside.std(), 1e-30):
        return None
    rival_s = _rival_s(window - outside.mean(), peak, lobe_samples) / fs
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
    weights = block_weights(np.array(qualities)[keep]) if weigh_blocks else None  # plain mean
    spread_s = spread_sigma_s(used, weights) if len(used) > 1 else 1.0 / fs
    # a weak peak's block spread understates its error (few blocks, heavy tails)
    spread_s = spread_s / min(1.0, quality / WEAK_PEAK)
    stat = max(spread_s, ml_gcc_sigma_s(ml, freqs, len(used)), rival_s)
    delay_s = float(np.average(used, weights=weights))
    return delay_s, float(max(stat, 1e-9)), quality, int(keep.sum())


def block_weights(qualities: np.ndarray) -> np.ndarray:
    """Inverse-variance weights q²/(1 − q²) of blocks' delays from each block's own peak
    ``qualities`` q (its normalized ML-GCC peak, which reads like a coherence |γ|): Carter's
    variance of a delay goes as (1 − |γ|²)/|γ|². A capture's blocks do not carry the same
    signal: a time signal's 0.1–0.2 s marks and the pause before its phase chips, voice's
    syllables, CW's key-up leave some blocks little to time, and their delays wander further;
    the blocks' plain mean let them pull as much as the rest. Not below 30 MHz
    (:func:`pair_delays`): there a sky wave fades through the capture, a block's peak is best
    where it adds in phase with the ground wave, and weighing by it leans on the sky wave's
    pull, which the plain mean averages over its fading. Weighed, HF NFM's median went 2.50 →
    3.09 km, 4FSK 3.12 → 3.48 km, AM voice 4.69 → 5.34 km (``heimdall eval --method tdoa
    --network hf``), and 30 s LF sets 6.00 → 6.33 km with 10 of 12 inside, not 11
    (``scripts/lf_time_signal_sets.py 12 2020``)."""
    q = np.clip(qualities, BLOCK_QUALITY_RANGE[0], BLOCK_QUALITY_RANGE[1])
    return q**2 / (1.0 - q**2)


def spread_sigma_s(delays_s: np.ndarray, weights: np.ndarray | None = None) -> float:
    """σ (s) of the ``weights``-weighted mean of ``delays_s``, one per block, from their spread:
    √(Σw(x − x̄)²/((n − 1)·Σw)) (std/√n for equal weights: the weights give each block's variance
    up to one common scale, which the spread estimates), widened by Student's ``t`` over the
    normal quantile at ``SPREAD_CONFIDENCE``, so that the 95 % interval it gives is the t
    interval of n − 1 degrees of freedom. A 0.2 s capture has 4 blocks: a
    spread of 4 is itself uncertain (3 degrees of freedom), and std/√4 alone was often small by
    chance: in 0.2 s time-signal and AM-voice captures, pairs of peak quality 0.5–0.8 (σ mostly
    that spread) held their error within 0.674 σ 0.41–0.44 of the time and within 1.96 σ
    0.83–0.90 (``scripts/pair_calibration.py --samples 10000``), and the fix leaned on them.
    The widening is 1.62 for 4 blocks, 1.12 for 12 and 1.01 for the 87 of a 30 s LF capture;
    where Carter's bound or a rival peak sets σ it changes nothing."""
    n = len(delays_s)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.average(delays_s, weights=w)
    variance = (w * (delays_s - mean) ** 2).sum() / ((n - 1) * w.sum())
    return float(np.sqrt(variance) * _t_widening(n))


@cache
def _t_widening(blocks: int) -> float:
    """Student's t over the normal at ``SPREAD_CONFIDENCE`` for ``blocks`` − 1 degrees of
    freedom: computed once per block count, not per pair (scipy's two ppf cost ~0.2 ms)."""
    return float(stats.t.ppf(SPREAD_CONFIDENCE, blocks - 1) / stats.norm.ppf(SPREAD_CONFIDENCE))


def _rival_s(excess: np.ndarray, peak: int, lobe_samples: float) -> float:
    """σ (in samples) that a rival peak of the summed correlation ``excess`` (over the noise,
    per lag of the searched window) puts on the choice of ``peak``: a local maximum more than a
    main lobe away, nearly as high, may be the true one (a tone-like modulation's periodic
    correlation, noise on a weak pair). Nothing below RIVAL_FROM of the peak; half the distance
    between them for a tie."""
    index = np.arange(len(excess))
    local = (excess >= np.roll(excess, 1)) & (excess >= np.roll(excess, -1))
    local[[0, -1]] = False
    candidates = np.flatnonzero(local & (np.abs(index - peak) > lobe_samples))
    if not len(candidates) or excess[peak] <= 0:
        return 0.0
    rival = candidates[int(np.argmax(excess[candidates]))]
    ratio = excess[rival] / excess[peak]
    share = np.clip((ratio - RIVAL_FROM) / (1.0 - RIVAL_FROM), 0.0, 1.0)
    return float(0.5 * share * abs(rival - peak))


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
