"""Why one Gaussian ellipse cannot be honest at both 50 % and 95 %: on the TDoA simulator, the
truth's squared Mahalanobis distance d² under the pair covariance the solver starts from
(each receiver's clock and floor, A·diag(σ_rx²)·Aᵀ, plus each pair's correlation σ), linearized
at the truth: no fit, no robust weights, no empirical widening.

Only jobs whose every pair has peak quality ≥ 0.2 count (no weak pair, so no wrong peak). For an
honest Gaussian σ, d² is χ²₂: mean 2, median 1.386, 50 % of jobs ≤ 1.386 and 95 % ≤ 5.99. The
true pair errors are also split into a receiver part (the arrivals that best explain them) and
what is left per pair, each with its own mean d² beside the share of 2 the covariance gives it.
A mean near 2 with a median well under 1.386 is a σ right on average whose errors are
heavy-tailed (a few echo pulls, many small ones): an ellipse scaled for the 95 % contour is too
large at 50 %.

usage: .venv/bin/python scripts/ellipse_tails.py [NETWORK] [JOBS] [SEED] [SIGNAL ...]
       (reference, 100 jobs, seed 777001, all families but CW: ~1 min per family)
"""

import sys

import numpy as np
from scipy import stats

from heimdall.dsp.iq import decode_iq
from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import Progress, format_table
from heimdall.schemas.errors import HeimdallError
from heimdall.schemas.job import IQJob
from heimdall.sim.signals import SIGNAL_KINDS
from heimdall.sim.tdoa import TdoaScenario, TdoaScenarioGenerator, TdoaSimConfig
from heimdall.tdoa.align import TimedCapture, align
from heimdall.tdoa.correlate import pair_delays
from heimdall.tdoa.fuse import MAX_WINDOW_SAMPLES
from heimdall.tdoa.solve import Geometry
from heimdall.tdoa.solve import incidence as pair_incidence

STRONG_PEAK = 0.2  # pair_calibration.py's weak band ends here
STEP_M = 1.0  # finite difference for the Jacobian
HEADERS = [
    "signal", "jobs", "mean d²", "median d²", "≤ 1.386", "≤ 5.99",
    "receiver part: mean d² (share of 2)", "pair part: mean d² (share of 2)",
]  # fmt: skip


def captures_of(job: IQJob) -> list[TimedCapture]:
    return [
        TimedCapture(
            index=i, receiver_id=c.receiver_id, lat=c.lat, lon=c.lon, alt_m=c.alt_m,
            samples=decode_iq(c.inline_bytes(), c.datatype, c.num_samples), time_ns=c.time_ns,
            sample_rate_hz=c.sample_rate_hz, center_frequency_hz=c.center_frequency_hz,
            clock_sigma_ns=float(c.clock.uncertainty_ns),
        )
        for i, c in enumerate(job.receivers)
    ]  # fmt: skip


def job_figures(scenario: TdoaScenario) -> tuple[float, float, float, float, float] | None:
    """(d² of the whole error, of its receiver part, of its pair part, and the covariance's
    expected d² of each part) of one job; None when a pair is weak, nothing correlates or the
    geometry leaves a direction free."""
    captures = captures_of(scenario.job)
    try:
        pairs, _, receiver_sigma_s = pair_delays(align(captures, max_samples=MAX_WINDOW_SAMPLES))
    except HeimdallError:  # no_signal, no_common_time: such a job has no d²
        return None
    if len(pairs) < 3 or min(p.peak_quality for p in pairs) < STRONG_PEAK:
        return None
    flight = scenario.flight_s()
    ids = [c.receiver_id for c in captures]
    error_s = np.array([p.delay_s - (flight[ids[p.a]] - flight[ids[p.b]]) for p in pairs])
    incidence = pair_incidence(pairs, len(captures))
    receiver_cov = incidence @ np.diag(receiver_sigma_s**2) @ incidence.T
    pair_cov = np.diag([p.stat_s**2 for p in pairs])
    jacobian = _jacobian(captures, pairs, scenario)
    weight = np.linalg.inv(receiver_cov + pair_cov)
    information = jacobian.T @ weight @ jacobian
    try:
        gain = np.linalg.solve(information, jacobian.T @ weight)  # position error per pair error
    except np.linalg.LinAlgError:  # receivers on one line: a direction the delays do not fix
        return None

    def d2(error: np.ndarray) -> float:
        shift = gain @ error
        return float(shift @ information @ shift)

    def expected(cov: np.ndarray) -> float:
        return float(np.trace(information @ gain @ cov @ gain.T))

    arrivals = np.linalg.pinv(incidence) @ error_s
    receiver_part = incidence @ arrivals
    return (d2(error_s), d2(receiver_part), d2(error_s - receiver_part),
            expected(receiver_cov), expected(pair_cov))  # fmt: skip


def _jacobian(captures, pairs, scenario) -> np.ndarray:
    """d(pair delay)/d(east, north) at the truth, s/m."""
    geometry = Geometry(
        np.array([c.lat for c in captures]), np.array([c.lon for c in captures]),
        np.array([c.alt_m for c in captures]), captures[0].center_frequency_hz,
    )  # fmt: skip
    frame = LocalFrame(scenario.true_lat, scenario.true_lon)
    a, b = [p.a for p in pairs], [p.b for p in pairs]
    here = geometry.delays_s(scenario.true_lat, scenario.true_lon)
    columns = []
    for east, north in np.eye(2) * STEP_M:
        lat, lon = frame.to_latlon(east, north)
        moved = geometry.delays_s(float(lat), float(lon))
        columns.append(((moved[a] - moved[b]) - (here[a] - here[b])) / STEP_M)
    return np.stack(columns, axis=1)


def family_row(network: str, signal: str, jobs: int, seed: int) -> list:
    gen = TdoaScenarioGenerator(TdoaSimConfig(network=network, clock_sigma_ns=(50.0, 50.0)), seed)
    figures, progress = [], Progress(jobs, f"d² {network} {signal}")
    for i in range(jobs):
        found = job_figures(gen.next(kind=signal))
        if found is not None:
            figures.append(found)
        progress.update(i + 1)
    if not figures:
        return [signal, 0, *["-"] * 6]
    total, receiver, pair, exp_receiver, exp_pair = np.array(figures).T
    limit50, limit95 = stats.chi2.ppf([0.5, 0.95], 2)
    return [
        signal, len(total), f"{total.mean():.2f}", f"{np.median(total):.2f}",
        f"{np.mean(total <= limit50):.2f}", f"{np.mean(total <= limit95):.2f}",
        f"{receiver.mean():.2f} ({exp_receiver.mean():.2f})",
        f"{pair.mean():.2f} ({exp_pair.mean():.2f})",
    ]  # fmt: skip


def main(argv: list[str]) -> None:
    network = argv[0] if argv else "reference"
    jobs = int(argv[1]) if len(argv) > 1 else 100
    seed = int(argv[2]) if len(argv) > 2 else 777001
    signals = argv[3:] or [s for s in SIGNAL_KINDS if s != "cw"]
    rows = [family_row(network, s, jobs, seed) for s in signals]
    print(f"\n{network} network, {jobs} jobs per family, seed {seed}: jobs with no weak pair")
    print(format_table(HEADERS, rows))


if __name__ == "__main__":
    main(sys.argv[1:])
