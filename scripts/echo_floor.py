"""The error the simulator's echoes alone cause on the reference network, with perfect
correlation: each receiver's arrival moved by its echo's pull on a narrowband peak,
δ·(ρ² + ρ cos φ)/(1 + ρ² + 2ρ cos φ) (echo δ 0.5–20 µs late, −20…−3 dB, random phase), plus the
GNSS clock error (σ 50 ns); the position then fitted from the arrivals with an unknown emission
time by scipy's least squares, plain and with a soft-L1 loss. Independent of ``heimdall.tdoa``.

usage: .venv/bin/python scripts/echo_floor.py [TRIALS]   (400 trials: about 10 s)
"""

import sys

import numpy as np
from scipy.optimize import least_squares

from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import format_table
from heimdall.sim.stations import REFERENCE_NETWORK
from heimdall.sim.tdoa import TdoaSimConfig

C_M_S = 299_792_458.0


def echo_pull_s(rng: np.random.Generator, count: int, config: TdoaSimConfig) -> np.ndarray:
    rho = 10 ** (rng.uniform(*config.echo_db, count) / 20)
    delay_s = rng.uniform(*config.echo_delay_us, count) * 1e-6
    phase = rng.uniform(0, 2 * np.pi, count)
    cos = np.cos(phase)
    return delay_s * (rho**2 + rho * cos) / (1 + rho**2 + 2 * rho * cos)


def fit(receivers_m: np.ndarray, arrival_s: np.ndarray, start_m: np.ndarray, loss: str):
    def residual(p):
        return (arrival_s - p[2] - np.linalg.norm(receivers_m - p[:2], axis=1) / C_M_S) / 1.3e-6

    t0 = np.median(arrival_s - np.linalg.norm(receivers_m - start_m, axis=1) / C_M_S)
    return least_squares(residual, np.r_[start_m, t0], loss=loss, x_scale=[1e3, 1e3, 1e-6]).x[:2]


def main(trials: int) -> None:
    config = TdoaSimConfig()
    rng = np.random.default_rng(1)
    lats = [s.lat for s in REFERENCE_NETWORK]
    lons = [s.lon for s in REFERENCE_NETWORK]
    receivers_m = LocalFrame(np.mean(lats), np.mean(lons)).to_enu(lats, lons)[:, :2]
    lo, hi = receivers_m.min(0) - config.margin_m, receivers_m.max(0) + config.margin_m
    errors: dict[str, list[float]] = {"linear": [], "soft_l1": []}
    pulls = echo_pull_s(rng, 200_000, config)
    for _ in range(trials):
        truth = rng.uniform(lo, hi)
        arrival = np.linalg.norm(receivers_m - truth, axis=1) / C_M_S
        arrival += echo_pull_s(rng, len(arrival), config) + rng.normal(0, 50e-9, len(arrival))
        start = truth + rng.normal(0, 2_000.0, 2)  # near the truth: no wrong optimum
        for loss in errors:
            estimate = fit(receivers_m, arrival, start, loss)
            errors[loss].append(float(np.linalg.norm(estimate - truth)))
    print(
        f"echo pull per receiver: median |·| {np.median(np.abs(pulls)) * 1e6:.2f} µs, RMS "
        f"{np.sqrt(np.mean(pulls**2)) * 1e6:.2f} µs, 99th percentile "
        f"{np.percentile(np.abs(pulls), 99) * 1e6:.1f} µs"
    )
    rows = [
        [loss, trials, *(f"{np.percentile(e, q):.0f}" for q in (50, 90, 95))]
        for loss, e in errors.items()
    ]
    print(format_table(["fit", "trials", "median m", "p90 m", "p95 m"], rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
