"""Training arrays from simulated scenarios, built in parallel and reproducible from a seed.

The network's first operation pools each receiver's features over time (mean, max, std); the
dataset stores those pooled statistics of the *un-normalized* dBFS features so that μ/σ can be
fitted on the training set afterwards, and so 50 000 jobs fit in memory (the full spectra would
not). :func:`pooled_stats` is the numpy twin of ``LocalizerNet.pool``; the export checks that
the ONNX graph on full spectra matches the training path.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from heimdall.dsp.features import FeatureExtractor
from heimdall.dsp.threads import limit_native_threads
from heimdall.sim.scenario import ScenarioGenerator, SimConfig

STD_EPS = 1e-6
CHUNK = 250


@dataclass
class Arrays:
    """Pooled dBFS stats ``[N, R, 3, rows]``, receiver ENU/scale ``[N, R, 3]``, mask, target."""

    stats_db: np.ndarray
    rx_enu: np.ndarray
    rx_mask: np.ndarray
    target_en: np.ndarray
    is_reference: np.ndarray
    sum_db: float
    sumsq_db: float
    count: int

    def __len__(self) -> int:
        return len(self.target_en)


def pooled_stats(db: np.ndarray) -> np.ndarray:
    """``[..., rows, T]`` → ``[..., 3, rows]``: time mean, time max and time variance."""
    mean = db.mean(-1)
    var = ((db - mean[..., None]) ** 2).mean(-1)
    return np.stack([mean, db.max(-1), var], axis=-2)


def normalized_stats(stats_db: np.ndarray, mean_db: float, std_db: float) -> np.ndarray:
    """Pooled stats of the normalized features Z = (L − μ)/σ, flattened to ``[..., 3·rows]``."""
    mean = (stats_db[..., 0, :] - mean_db) / std_db
    peak = (stats_db[..., 1, :] - mean_db) / std_db
    std = np.sqrt(stats_db[..., 2, :] / std_db**2 + STD_EPS)
    return np.concatenate([mean, peak, std], axis=-1).astype(np.float32)


def _chunk(args: tuple) -> Arrays:
    config, seed, index, count, max_receivers, position_scale_m, fx_params = args
    limit_native_threads(1)
    fx = FeatureExtractor(*fx_params)
    gen = ScenarioGenerator(config, seed=(seed, index))
    rows = 2 * fx.n_mels
    stats = np.zeros((count, max_receivers, 3, rows), np.float32)
    enu = np.zeros((count, max_receivers, 3), np.float32)
    mask = np.zeros((count, max_receivers), np.float32)
    target = np.zeros((count, 2), np.float32)
    is_ref = np.zeros(count, bool)
    total, total_sq, n_values = 0.0, 0.0, 0
    for i in range(count):
        sc = gen.next()
        r = len(sc.stations)
        db = fx.dbfs(sc.iq).astype(np.float64)
        total += db.sum()
        total_sq += (db**2).sum()
        n_values += db.size
        stats[i, :r] = pooled_stats(db)
        frame = sc.frame()
        st = sc.stations
        enu[i, :r] = frame.to_enu([s.lat for s in st], [s.lon for s in st], [s.alt_m for s in st])
        enu[i, :r] /= position_scale_m
        mask[i, :r] = 1.0
        target[i] = sc.true_enu_m(frame) / position_scale_m
        is_ref[i] = sc.network == "reference"
    return Arrays(stats, enu, mask, target, is_ref, total, total_sq, n_values)


def build_arrays(
    config: SimConfig,
    seed: int,
    count: int,
    extractor: FeatureExtractor,
    max_receivers: int,
    position_scale_m: float,
    processes: int = 2,
    progress=None,
) -> Arrays:
    """``count`` scenarios → :class:`Arrays`; identical for any ``processes``."""
    fx_params = (extractor.sample_rate_hz, extractor.n_fft, extractor.hop, extractor.n_mels)
    tasks = []
    for index, start in enumerate(range(0, count, CHUNK)):
        n = min(CHUNK, count - start)
        tasks.append((config, seed, index, n, max_receivers, position_scale_m, fx_params))
    parts: list[Arrays] = []
    with mp.get_context("fork").Pool(processes) as pool:
        for part in pool.imap(_chunk, tasks):
            parts.append(part)
            if progress is not None:
                progress(sum(len(p) for p in parts))
    return Arrays(
        stats_db=np.concatenate([p.stats_db for p in parts]),
        rx_enu=np.concatenate([p.rx_enu for p in parts]),
        rx_mask=np.concatenate([p.rx_mask for p in parts]),
        target_en=np.concatenate([p.target_en for p in parts]),
        is_reference=np.concatenate([p.is_reference for p in parts]),
        sum_db=sum(p.sum_db for p in parts),
        sumsq_db=sum(p.sumsq_db for p in parts),
        count=sum(p.count for p in parts),
    )
