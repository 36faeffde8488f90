"""Scoring an estimate against the truth: the error (metres) and whether the truth lies inside
the ellipse, one job at a time or tallied over many (median, p90, p95, 50 % and 95 % coverage).
The one place demo, eval, the TDoA evaluation and the tables compute them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from heimdall.geo.ellipse import chi2_2dof_scale, mahalanobis_sq
from heimdall.geo.enu import LocalFrame
from heimdall.schemas.result import Result


def truth_offset_en_m(result: Result, true_lat: float, true_lon: float) -> np.ndarray | None:
    """Where the truth lies from the estimate, east/north metres (None when failed)."""
    if result.position is None:
        return None
    frame = LocalFrame(result.position.lat, result.position.lon)
    return np.asarray(frame.to_enu(true_lat, true_lon)[:2], dtype=float)


def error_m(result: Result, true_lat: float, true_lon: float) -> float:
    """Horizontal distance from the estimate to the truth, metres (NaN when failed)."""
    offset = truth_offset_en_m(result, true_lat, true_lon)
    return math.nan if offset is None else float(np.hypot(*offset))


def inside_ellipse(result: Result, true_lat: float, true_lon: float) -> bool | None:
    """Whether the truth lies inside the result's ellipse (at its confidence); None when the
    result has no ellipse."""
    if result.position is None or result.covariance_en_m2 is None or result.ellipse is None:
        return None
    return _holds(result.position.lat, result.position.lon, result.covariance_en_m2,
                  true_lat, true_lon, result.ellipse.confidence)  # fmt: skip


def inside_an_ellipse(result: Result, true_lat: float, true_lon: float) -> bool | None:
    """Whether the truth lies inside the estimate's ellipse or one of its ``alternatives``'
    (e.g. the other crossing of a 3-station fix, shown beside it); None without an ellipse."""
    inside = inside_ellipse(result, true_lat, true_lon)
    if inside is None or inside:
        return inside
    return any(
        _holds(mode.lat, mode.lon, mode.covariance_en_m2, true_lat, true_lon,
               result.ellipse.confidence)
        for mode in result.alternatives or []
        if mode.covariance_en_m2 is not None
    )  # fmt: skip


def _holds(lat, lon, covariance_en_m2, true_lat, true_lon, confidence: float) -> bool:
    """Whether the ``confidence`` ellipse of a Gaussian at (lat, lon) holds the truth."""
    offset = np.asarray(LocalFrame(lat, lon).to_enu(true_lat, true_lon)[:2], dtype=float)
    return float(mahalanobis_sq(offset, covariance_en_m2)) <= chi2_2dof_scale(confidence) ** 2


def covered(d2: np.ndarray, confidence: float) -> float:
    """Share of squared Mahalanobis distances inside the ``confidence`` ellipse."""
    return float((np.asarray(d2) <= chi2_2dof_scale(confidence) ** 2).mean())


@dataclass
class Tally:
    """Per-job outcomes of one method: error (m) and squared Mahalanobis distance of the truth,
    NaN for a failed job."""

    error_m: list[float] = field(default_factory=list)
    d2: list[float] = field(default_factory=list)

    def add(self, offset_en_m: np.ndarray | None, cov_en_m2: np.ndarray | None) -> None:
        """One job: the truth's offset from the estimate and the estimate's covariance."""
        if offset_en_m is None:
            self.error_m.append(math.nan)
            self.d2.append(math.nan)
            return
        self.error_m.append(float(np.hypot(*offset_en_m)))
        try:
            self.d2.append(float(mahalanobis_sq(offset_en_m, cov_en_m2)))
        except np.linalg.LinAlgError:
            self.d2.append(math.inf)

    def add_result(self, result: Result, true_lat: float, true_lon: float) -> None:
        """One job from its published result."""
        offset = truth_offset_en_m(result, true_lat, true_lon) if result.status == "ok" else None
        cov = np.asarray(result.covariance_en_m2) if offset is not None else None
        self.add(offset, cov)

    def summary(self, subset: np.ndarray | None = None) -> dict:
        """jobs, failures, median/p90/p95 error (km) and 50 %/95 % coverage of the ok jobs."""
        err, d2 = np.asarray(self.error_m), np.asarray(self.d2)
        if subset is not None:
            err, d2 = err[subset], d2[subset]
        ok = np.isfinite(err)
        e_km, d2_ok = err[ok] / 1000.0, d2[ok]
        counts = {"jobs": len(err), "failures": int((~ok).sum())}
        if not ok.any():
            names = ("median_km", "p90_km", "p95_km", "coverage_50", "coverage_95")
            return counts | dict.fromkeys(names, math.nan)
        return counts | {
            "median_km": float(np.median(e_km)),
            "p90_km": float(np.percentile(e_km, 90)),
            "p95_km": float(np.percentile(e_km, 95)),
            "coverage_50": covered(d2_ok, 0.50),
            "coverage_95": covered(d2_ok, 0.95),
        }
