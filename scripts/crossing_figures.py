"""Three-station fixes: how often TDoA, hybrid and the RSS network's Gaussian pick the crossing
nearest the truth, and their median errors (NFM, GNSS σ 50 ns, one echo per receiver).

A fix is ambiguous when it has ``alternatives``; the right crossing is the candidate (estimate
or alternative) nearest the truth. "RSS picks" is the candidate with the smallest Mahalanobis
distance under the network's own covariance (not inflated).

usage: .venv/bin/python scripts/crossing_figures.py [JOBS] [SEED]   (100 jobs per network: ~2 min)
"""

import sys
from pathlib import Path

import numpy as np

from heimdall.geo.ellipse import mahalanobis_sq
from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import Progress, format_table
from heimdall.harness.scoring import error_m
from heimdall.inference.localizer import Localizer
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

MODEL = Path(__file__).resolve().parents[1] / "models" / "v1"


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(np.hypot(*LocalFrame(*a).to_enu(*b)[:2]))


def three_station_jobs(network: str, jobs: int, seed: int):
    """(job, truth): random 3-station networks, or 3 of the 7 reference stations."""
    config = TdoaSimConfig(network=network, random_receivers=(3, 3), clock_sigma_ns=(50.0, 50.0))
    generator = TdoaScenarioGenerator(config, seed=seed)
    for i in range(jobs):
        scenario = generator.next(kind="nfm")
        job = scenario.job
        if network == "reference":
            keep = sorted(np.random.default_rng(i).choice(len(job.receivers), 3, replace=False))
            job = job.model_copy(update={"receivers": [job.receivers[k] for k in keep]})
        yield job, (scenario.true_lat, scenario.true_lon)


def row(localizer: Localizer, network: str, jobs: int, seed: int) -> list:
    errors = {"tdoa": [], "hybrid": [], "rss": []}
    picks = {"tdoa": 0, "hybrid": 0, "rss": 0}
    ambiguous = right_overall = 0
    progress = Progress(jobs, f"3-station {network}")
    for i, (job, truth) in enumerate(three_station_jobs(network, jobs, seed)):
        results = {m: localizer.localize(job.model_copy(update={"method": m})) for m in errors}
        progress.update(i + 1)
        for method, result in results.items():
            if result.status == "ok":
                errors[method].append(error_m(result, *truth))
        timed = results["tdoa"]
        if timed.status != "ok":
            continue
        candidates = [(timed.position.lat, timed.position.lon)]
        candidates += [(a.lat, a.lon) for a in timed.alternatives or []]
        right = int(np.argmin([distance_m(truth, c) for c in candidates]))
        if len(candidates) == 1:
            right_overall += 1
            continue
        ambiguous += 1
        hybrid = results["hybrid"]
        chosen = {"tdoa": 0}
        if hybrid.status == "ok":
            at = (hybrid.position.lat, hybrid.position.lon)
            chosen["hybrid"] = int(np.argmin([distance_m(at, c) for c in candidates]))
        power = results["rss"]
        if power.status == "ok":
            frame = LocalFrame(power.position.lat, power.position.lon)
            cov = np.array(power.covariance_en_m2)
            chosen["rss"] = int(
                np.argmin([mahalanobis_sq(frame.to_enu(*c)[:2], cov) for c in candidates])
            )
        for method, k in chosen.items():
            picks[method] += k == right
        right_overall += chosen.get("hybrid", 0) == right
    return [
        network, jobs, ambiguous,
        *(f"{picks[m]}/{ambiguous}" for m in ("tdoa", "hybrid", "rss")),
        f"{right_overall}/{jobs}",
        *(f"{np.median(errors[m]) / 1e3:.1f}" if errors[m] else "-" for m in errors),
    ]  # fmt: skip


def main(jobs: int, seed: int) -> None:
    localizer = Localizer(MODEL)
    rows = [row(localizer, network, jobs, seed) for network in ("random", "reference")]
    headers = [
        "3-station network", "jobs", "ambiguous", "right: tdoa", "hybrid", "rss",
        "hybrid right, all", "median km tdoa", "hybrid", "rss",
    ]  # fmt: skip
    print(format_table(headers, rows))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100,
        int(sys.argv[2]) if len(sys.argv) > 2 else 5150,
    )
