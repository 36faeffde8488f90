"""Where a time fix's likelihood is a curved valley, not the ellipse its curvature gives.

The covariance at the optimum, ``(JᵀWJ)⁻¹``, is the Gaussian that fits the likelihood's
curvature there (the Laplace approximation): a straight ellipse. With three receivers, or a
transmitter far outside them, the hyperbolae cross at a shallow angle and the likelihood is a
long valley that bends away from the ellipse's major axis: points as likely as the truth can lie
tens of σ outside it. Measured on 30 s 3-station LF sets (``scripts/lf_time_signal_sets.py 60
2020``): two truths 61 and 87 km from the estimate, at −2 log likelihood only 1.9 and 1.2 above
the optimum's, had d² = 46 and 4159 in its covariance.

:func:`valley_points` walks the valley from the optimum both ways, along the lowest cost across
it, and keeps its floor and edges while the cost stays within ``limit`` of the optimum's;
:func:`covering` widens a covariance along their spread until every such point lies inside the
ellipse of the same χ² limit. Where the likelihood is Gaussian the walk stays inside the
ellipse and nothing changes. Used for fixes on 3 or 4 receivers: with more, the solver's
per-receiver empirical σ already widens the ellipse, and widening again over-covers (all
fixes: random network NFM cov50 0.59 → 0.64; 0.2 s time signal 0.81 → 0.92, AM voice 0.65 →
0.76).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from heimdall.geo.enu import LocalFrame

STEP_SIGMAS = 0.5  # a step along the valley, in σ's of the ellipse's major axis
MAX_STEPS = 60  # per direction: 30 major-axis σ's
ACROSS_POINTS = 61  # cost samples across the valley at each step
MIN_ACROSS_SIGMAS = 4.0  # the search across spans at least ± this many minor-axis σ's
MAX_WIDENING = 1e6  # the valley's spread is added at most this many times

Cost = Callable[[np.ndarray, np.ndarray], np.ndarray]  # −2 log likelihood at lat, lon arrays


def valley_points(
    cost: Cost, lat: float, lon: float, covariance_en_m2: np.ndarray, limit: float,
    max_distance_m: float,
) -> np.ndarray:  # fmt: skip
    """East/north offsets (m) from (lat, lon) of the region where the cost is within ``limit`` of
    its value at (lat, lon): walked both ways from the major axis along the valley, a point near
    its floor and its two edges at each step; ``[K, 2]``."""
    frame = LocalFrame(lat, lon)
    variances_m2, axes = np.linalg.eigh(np.asarray(covariance_en_m2, dtype=np.float64))
    sigma_major_m = float(np.sqrt(max(variances_m2[-1], 1e-6)))
    sigma_minor_m = float(np.sqrt(max(variances_m2[0], 1e-6)))
    step_m = STEP_SIGMAS * sigma_major_m
    base = float(cost(np.array(lat), np.array(lon)))
    points = []
    for sign in (1.0, -1.0):
        here, tangent = np.zeros(2), sign * axes[:, -1]
        reach_m = max(MIN_ACROSS_SIGMAS * sigma_minor_m, step_m)
        for _ in range(MAX_STEPS):
            ahead = here + step_m * tangent
            normal = np.array([-tangent[1], tangent[0]])
            across, values = _across(cost, frame, ahead, normal, reach_m)
            within = values <= base + limit
            while within[[0, -1]].any() and reach_m < max_distance_m:  # wider than searched
                reach_m *= 2
                across, values = _across(cost, frame, ahead, normal, reach_m)
                within = values <= base + limit
            if not within.any():
                break
            floor = across[int(np.argmin(values))]
            if np.hypot(*floor) > max_distance_m:
                break
            # the valley's floor carries the walk on; its edges (it widens away from the
            # optimum as the hyperbolae part) are points of the region too
            points += [across[within][0], floor, across[within][-1]]
            tangent = (floor - here) / max(np.hypot(*(floor - here)), 1e-9)
            here = floor
    return np.array(points).reshape(-1, 2)


def _across(cost, frame, centre, normal, reach_m):
    """Points across the valley at ``centre`` (east/north, m), ± ``reach_m``, and their cost."""
    across = centre + np.linspace(-reach_m, reach_m, ACROSS_POINTS)[:, None] * normal
    lats, lons = frame.to_latlon(across[:, 0], across[:, 1])
    return across, cost(np.asarray(lats), np.asarray(lons))


def covering(covariance_en_m2: np.ndarray, points_en_m: np.ndarray, limit: float) -> np.ndarray:
    """``covariance_en_m2`` plus the least multiple of the points' spread (their second moment
    about the origin) that puts every point within d² ≤ ``limit``; unchanged when all are."""
    covariance = np.asarray(covariance_en_m2, dtype=np.float64)
    if not len(points_en_m) or _worst_d2(covariance, points_en_m) <= limit:
        return covariance
    spread = points_en_m.T @ points_en_m / len(points_en_m)
    low, high = 0.0, 1.0
    while _worst_d2(covariance + high * spread, points_en_m) > limit and high < MAX_WIDENING:
        low, high = high, high * 2
    for _ in range(30):  # bisection: the least widening that holds them all
        middle = 0.5 * (low + high)
        if _worst_d2(covariance + middle * spread, points_en_m) > limit:
            low = middle
        else:
            high = middle
    return covariance + high * spread


def _worst_d2(covariance: np.ndarray, points: np.ndarray) -> float:
    inverse = np.linalg.inv(covariance)
    return float(np.max(np.einsum("ki,ij,kj->k", points, inverse, points)))
