"""Signal detection: does anything in a capture stand above its own noise floor?

A receiver that hears only noise still informs the RSS network (its silence is evidence), but a
job where fewer than three receivers hear anything has no position to give (DESIGN §4,
``no_signal``). The test works on a capture's time-averaged power per FFT bin: the noise floor
is a low percentile of the bins (robust to a signal filling most of the band), and a signal is a
band of ``smooth_bins`` bins whose mean power stands above it by more than noise alone reaches.

That threshold depends on how many frames were averaged: with few frames the noise's own
spread is large (one 512-sample frame of white noise reads ~17 dB peak-to-floor, 75 frames
~2.5 dB). :func:`noise_threshold_db` gives the level pure noise exceeds with probability
about ``false_alarm`` per capture (gamma distributions of averaged periodogram bins, with the
equivalent degrees of freedom of Hann frames at 75 % overlap, plus ``MARGIN_DB``), never below
``MIN_THRESHOLD_DB``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import gamma

MIN_THRESHOLD_DB = 3.0
SMOOTH_BINS = 5
FLOOR_PERCENTILE = 10.0
FALSE_ALARM = 1e-4
MARGIN_DB = 1.0  # the gamma model is approximate: measured false alarms were ~1 % without it
# Equivalent independent frames per frame for Hann windows overlapping by 75 % (Welch):
# 1 / (1 + 2·Σρ²) with ρ = 0.659, 0.167 at lags 1, 2; adjacent Hann bins are correlated too.
FRAME_DOF = 0.52
BIN_DOF = 0.8


def signal_to_floor_db(
    mean_power: np.ndarray,
    smooth_bins: int = SMOOTH_BINS,
    floor_percentile: float = FLOOR_PERCENTILE,
) -> float | np.ndarray:
    """Strongest ``smooth_bins``-wide band over the noise floor, in dB (−inf for silence, +inf
    for a signal over an exactly zero floor); ``mean_power`` ``[..., n_bins]`` gives one level
    per capture (a float for one capture)."""
    p = np.asarray(mean_power, dtype=np.float64)
    # The spectrum is circular (two-sided FFT): wrap so a signal at ±fs/2 is not split.
    wrapped = np.concatenate([p[..., p.shape[-1] - (smooth_bins - 1) :], p], axis=-1)
    bands = np.lib.stride_tricks.sliding_window_view(wrapped, smooth_bins, axis=-1)
    peak = bands.mean(axis=-1).max(axis=-1)
    floor = np.percentile(p, floor_percentile, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = 10.0 * np.log10(peak / floor)
    level = np.where(peak <= 0.0, -np.inf, np.where(floor <= 0.0, np.inf, level))
    return float(level) if level.ndim == 0 else level


@lru_cache(maxsize=256)  # scipy's gamma.ppf costs ~0.2 ms; frames and bins repeat
def noise_threshold_db(frames: int, n_bins: int, false_alarm: float = FALSE_ALARM) -> float:
    """Peak-to-floor level (dB) that white noise averaged over ``frames`` frames exceeds with
    probability ``false_alarm``."""
    dof = max(1.0, FRAME_DOF * frames)
    floor = gamma.ppf(FLOOR_PERCENTILE / 100.0, dof) / dof
    band_dof = dof * SMOOTH_BINS * BIN_DOF
    peak = gamma.ppf(1.0 - false_alarm / n_bins, band_dof) / band_dof
    return max(MIN_THRESHOLD_DB, float(10.0 * np.log10(peak / floor)) + MARGIN_DB)


def signal_present(mean_power: np.ndarray, frames: int) -> bool | np.ndarray:
    """Whether captures whose ``frames`` frames average to bin powers ``mean_power``
    ``[..., n_bins]`` hold a signal (a bool for one capture)."""
    level = signal_to_floor_db(mean_power)
    present = np.asarray(level) >= noise_threshold_db(frames, np.shape(mean_power)[-1])
    return bool(present) if present.ndim == 0 else present
