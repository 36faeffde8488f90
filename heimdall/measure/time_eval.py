"""``heimdall eval --method tdoa|hybrid|rss``: localization by time on the TDoA simulator.

Per network and signal type: error percentiles, how often the 50 % / 95 % ellipses hold the
truth (and the 95 % one or an alternative's, e.g. the other crossing of a 3-station fix, shown
beside it), failures by code, the median ratio of each job's error to its Cramér–Rao bound (thermal
noise and GNSS clocks, no multipath: the floor an unbiased estimator could reach), and the
median in-process time per job.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, propagation_m
from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import Progress, format_table
from heimdall.harness.scoring import Tally, covered, inside_an_ellipse
from heimdall.inference.localizer import Localizer
from heimdall.sim.tdoa import TdoaScenario, TdoaScenarioGenerator, TdoaSimConfig

HEADERS = [
    "network", "signal", "method", "jobs", "failed", "median m", "p90 m", "p95 m",
    "in 50%", "in 95%", "95% or alt", "err/CRLB", "s/job",
]  # fmt: skip


def crlb_m(scenario: TdoaScenario) -> float:
    """√trace of the position CRLB at the truth (unknown emission time, per-receiver thermal
    delay variance 1/(8π²B²·N·SNR) plus the clock's)."""
    stations = scenario.stations
    frame = LocalFrame(scenario.true_lat, scenario.true_lon)
    lats = np.array([s.lat for s in stations])
    lons = np.array([s.lon for s in stations])
    alts = np.array([s.alt_m for s in stations])
    frequency = scenario.job.receivers[0].center_frequency_hz
    jac = []
    for d in np.eye(2):
        lat, lon = frame.to_latlon(d[0], d[1])
        ahead = propagation_m(frequency, float(lat), float(lon), 10.0, lats, lons, alts)
        here = propagation_m(
            frequency, scenario.true_lat, scenario.true_lon, 10.0, lats, lons, alts
        )
        jac.append((ahead - here) / SPEED_OF_LIGHT_M_S)
    snr = 10 ** (np.asarray(scenario.snr_db) / 10)
    b = scenario.rms_bandwidth_hz
    thermal = 1 / (8 * np.pi**2 * b**2 * scenario.num_samples * np.maximum(snr, 1e-6))
    variance = thermal + (scenario.clock_sigma_ns * 1e-9) ** 2
    design = np.column_stack([np.array(jac).T, np.ones(len(stations))])  # position + t0
    fisher = design.T @ np.diag(1 / variance) @ design
    return float(np.sqrt(np.trace(np.linalg.inv(fisher)[:2, :2])))


def evaluate_time(
    model_dir: Path,
    method: str,
    networks: list[str],
    signals: list[str],
    jobs: int,
    seed: int,
    clock_sigma_ns: tuple[float, float] = (50.0, 50.0),
    multipath: bool = True,
    num_samples: int | None = None,
) -> list[list]:
    """One table row per (network, signal); ``multipath=False`` drops the simulator's echo
    (the CRLB's own model: how close the estimator comes to it when nothing else is wrong);
    ``num_samples`` makes every capture that long (default: the simulator's 10 000–50 000)."""
    localizer = Localizer(model_dir)
    rows = []
    for network in networks:
        config = TdoaSimConfig(network=network, clock_sigma_ns=clock_sigma_ns)
        if not multipath:
            config = replace(config, echo_db=(-300.0, -300.0))
        if num_samples:
            config = replace(config, num_samples=(num_samples, num_samples))
        gen = TdoaScenarioGenerator(config, seed=seed)
        for signal in signals:
            rows.append(_row(localizer, gen, network, signal, method, jobs))
    return rows


def _row(localizer, gen, network, signal, method, jobs) -> list:
    tally, ratios, seconds, failures, shown = Tally(), [], [], Counter(), []
    progress = Progress(jobs, f"eval {method} {network} {signal}")
    for i in range(jobs):
        scenario = gen.next(kind=signal)
        started = time.perf_counter()
        result = localizer.localize(scenario.job.model_copy(update={"method": method}))
        seconds.append(time.perf_counter() - started)
        progress.update(i + 1)
        if result.status != "ok":
            failures[result.error.code.value] += 1
            continue
        tally.add_result(result, scenario.true_lat, scenario.true_lon)
        # the other crossing of a 3-station fix is shown beside the estimate, with its ellipse
        shown.append(bool(inside_an_ellipse(result, scenario.true_lat, scenario.true_lon)))
        bound_m = crlb_m(scenario)
        if np.isfinite(bound_m):  # a capture with nothing sent has no bound
            ratios.append(tally.error_m[-1] / bound_m)
    e, d = np.array(tally.error_m), np.array(tally.d2)
    failed = ", ".join(f"{n} {c}" for c, n in failures.items()) or "0"
    if not len(e):
        return [network, signal, method, jobs, failed, *["-"] * 7, f"{np.median(seconds):.2f}"]
    return [
        network, signal, method, jobs, failed,
        f"{np.median(e):.0f}", f"{np.percentile(e, 90):.0f}", f"{np.percentile(e, 95):.0f}",
        f"{covered(d, 0.50):.3f}", f"{covered(d, 0.95):.3f}", f"{np.mean(shown):.3f}",
        f"{np.median(ratios):.1f}" if ratios else "-", f"{np.median(seconds):.2f}",
    ]  # fmt: skip


def time_table(rows: list[list]) -> str:
    return format_table(HEADERS, rows)
