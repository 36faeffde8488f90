"""Classical RSS localization: nonlinear least squares on a log-distance model.

Model: S_r = P₁ − 10·γ·log10(max(d_r, 1 km) / 1 km) + ε_r, ε_r ~ N(0, σ²), with the transmitter
position (east, north), the received power at 1 km P₁ (which hides the unknown EIRP) and, when
at least ``min_for_exponent`` receivers hear the signal, the path-loss exponent γ as unknowns.
This is the simulator's own propagation family, so the baseline is a fair peer: it knows the
model but not its parameters. A coarse grid with P₁ and γ solved in closed form seeds
``scipy.optimize.least_squares``; the covariance is σ²(JᵀJ)⁻¹ of the position block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from heimdall.geo.enu import LocalFrame, frame_at_centroid
from heimdall.schemas.errors import TooFewReceivers

KM = 1000.0


@dataclass(frozen=True)
class RssConfig:
    shadowing_db: float = 6.0
    exponent_prior: float = 3.25  # used when too few receivers hear the signal to fit it
    exponent_bounds: tuple[float, float] = (1.5, 6.0)
    min_for_exponent: int = 5
    search_margin_km: float = 100.0
    grid_points: int = 41


@dataclass(frozen=True)
class RssEstimate:
    lat: float
    lon: float
    east_m: float
    north_m: float
    covariance_en_m2: np.ndarray
    exponent: float
    p1_dbfs: float
    receivers_used: int


def _log_distance(tx_km: np.ndarray, rx_km: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(tx_km[..., None, :] - rx_km, axis=-1)
    return 10.0 * np.log10(np.maximum(d, 1.0))


def _grid_seed(rx_km, s_dbfs, fit_exponent, cfg) -> np.ndarray:
    """Best grid position with P₁ (and γ) solved by linear least squares at each point."""
    lo = rx_km.min(0) - cfg.search_margin_km
    hi = rx_km.max(0) + cfg.search_margin_km
    axes = [np.linspace(lo[i], hi[i], cfg.grid_points) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    x = _log_distance(grid, rx_km)  # [G, R]
    if fit_exponent:
        xm = x - x.mean(1, keepdims=True)
        sm = s_dbfs - s_dbfs.mean()
        gamma = -(xm @ sm) / np.maximum((xm**2).sum(1), 1e-9)
        gamma = np.clip(gamma, *cfg.exponent_bounds)
    else:
        gamma = np.full(len(grid), cfg.exponent_prior)
    p1 = (s_dbfs + gamma[:, None] * x).mean(1)
    sse = ((s_dbfs - p1[:, None] + gamma[:, None] * x) ** 2).sum(1)
    return grid[int(np.argmin(sse))]


def localize_rss(
    rx_lat: np.ndarray,
    rx_lon: np.ndarray,
    signal_dbfs: np.ndarray,
    config: RssConfig | None = None,
    frame: LocalFrame | None = None,
) -> RssEstimate:
    """Estimate the transmitter from per-receiver powers (NaN = not heard)."""
    cfg = config or RssConfig()
    heard = np.isfinite(signal_dbfs)
    if heard.sum() < 3:
        raise TooFewReceivers(f"{int(heard.sum())} receivers hear the signal; RSS needs 3")
    frame = frame or frame_at_centroid(rx_lat, rx_lon)
    rx_km = frame.to_enu(rx_lat[heard], rx_lon[heard])[:, :2] / KM
    s = np.asarray(signal_dbfs[heard], dtype=np.float64)
    fit_exponent = heard.sum() >= cfg.min_for_exponent

    seed = _grid_seed(rx_km, s, fit_exponent, cfg)
    gamma0 = cfg.exponent_prior
    p10 = float((s + gamma0 * _log_distance(seed, rx_km)).mean())

    def residuals(theta: np.ndarray) -> np.ndarray:
        gamma = theta[3] if fit_exponent else cfg.exponent_prior
        model = theta[2] - gamma * _log_distance(theta[:2], rx_km)
        return (s - model) / cfg.shadowing_db

    theta0 = [seed[0], seed[1], p10] + ([gamma0] if fit_exponent else [])
    lo = [*list(rx_km.min(0) - 3 * cfg.search_margin_km), -np.inf]
    hi = [*list(rx_km.max(0) + 3 * cfg.search_margin_km), np.inf]
    if fit_exponent:
        lo.append(cfg.exponent_bounds[0])
        hi.append(cfg.exponent_bounds[1])
    theta0 = np.clip(theta0, np.array(lo) + 1e-6, np.array(hi) - 1e-6)
    fit = least_squares(residuals, theta0, bounds=(lo, hi), method="trf")

    jac = fit.jac
    cov_theta = np.linalg.pinv(jac.T @ jac)
    cov_en_m2 = cov_theta[:2, :2] * KM**2
    lat, lon = frame.to_latlon(fit.x[0] * KM, fit.x[1] * KM)
    return RssEstimate(
        lat=float(lat),
        lon=float(lon),
        east_m=float(fit.x[0] * KM),
        north_m=float(fit.x[1] * KM),
        covariance_en_m2=cov_en_m2,
        exponent=float(fit.x[3]) if fit_exponent else cfg.exponent_prior,
        p1_dbfs=float(fit.x[2]),
        receivers_used=int(heard.sum()),
    )
