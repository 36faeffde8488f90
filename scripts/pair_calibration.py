"""Are the pair delays' σ's honest? On the TDoA simulator, per signal family and band of peak
quality, the share of the pairs a fix used whose error against the geometry is within 0.674 σ
and 1.96 σ (0.50 and 0.95 for an honest Gaussian σ), with the median σ and |error| in µs and
the share more than 100 µs off (at VHF beyond any echo's pull: noise or a wrong peak).
The σ is the published one (`result.tdoa.pairs`): the correlation's own part, both clocks and the
systematic floor, before the solver's per-receiver empirical widening.

usage: .venv/bin/python scripts/pair_calibration.py [--samples N] [NETWORK] [JOBS] [SEED]
       [SIGNAL ...] (reference, 100 jobs, seed 777001, all families: ~4 min; ``--samples
       10000``: every capture 0.2 s long at VHF, as ``heimdall eval --samples``). Each family
       starts its own stream of the seed (not eval's one stream over the families).
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from heimdall.harness.console import Progress, format_table
from heimdall.inference.localizer import Localizer
from heimdall.sim.signals import SIGNAL_KINDS
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

FAR_OFF_S = 100e-6  # beyond any VHF echo's pull (≤ 20 µs late): noise or a wrong peak
QUALITY_BANDS = [(0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, np.inf)]  # median normalized peak
HEADERS = [
    "signal", "peak quality", "pairs", "≤ 0.674 σ", "≤ 1.96 σ", "median σ µs", "median |err| µs",
    "> 100 µs",
]  # fmt: skip


def used_pairs(
    localizer: Localizer, config: TdoaSimConfig, signal: str, jobs: int, seed: int
) -> np.ndarray:
    """[error s, σ s, peak quality] of every pair the ok fixes used."""
    network = config.network
    gen = TdoaScenarioGenerator(config, seed=seed)
    rows, progress = [], Progress(jobs, f"pairs {network} {signal}")
    for i in range(jobs):
        scenario = gen.next(kind=signal)
        result = localizer.localize(scenario.job.model_copy(update={"method": "tdoa"}))
        progress.update(i + 1)
        if result.status != "ok" or result.tdoa is None:
            continue
        flight_s = scenario.flight_s()
        for pair in result.tdoa.pairs:
            error_s = pair.delay_s - (flight_s[pair.a] - flight_s[pair.b])
            rows.append((error_s, pair.sigma_s, pair.peak_quality))
    return np.array(rows).reshape(-1, 3)


def table_rows(signal: str, pairs: np.ndarray) -> list[list]:
    rows = []
    for low, high in QUALITY_BANDS:
        band = pairs[(pairs[:, 2] >= low) & (pairs[:, 2] < high)]
        if not len(band):
            continue
        z = np.abs(band[:, 0]) / band[:, 1]
        rows.append([
            signal, f"{low:.1f}–{high:.1f}", len(band), f"{np.mean(z <= 0.674):.2f}",
            f"{np.mean(z <= 1.96):.2f}", f"{np.median(band[:, 1]) * 1e6:.1f}",
            f"{np.median(np.abs(band[:, 0])) * 1e6:.1f}",
            f"{np.mean(np.abs(band[:, 0]) > FAR_OFF_S):.2f}",
        ])  # fmt: skip
    return rows


def main(network: str, jobs: int, seed: int, signals: list[str], samples: int | None) -> None:
    localizer = Localizer(Path("models/v1"))
    config = TdoaSimConfig(network=network)
    if samples:
        config = replace(config, num_samples=(samples, samples))
    rows = []
    for signal in signals:
        rows += table_rows(signal, used_pairs(localizer, config, signal, jobs, seed))
    print(format_table(HEADERS, rows))


if __name__ == "__main__":
    args = sys.argv[1:]
    samples = None
    if "--samples" in args:
        at = args.index("--samples")
        samples = int(args[at + 1])
        del args[at : at + 2]
    main(
        args[0] if args else "reference",
        int(args[1]) if len(args) > 1 else 100,
        int(args[2]) if len(args) > 2 else 777_001,
        args[3:] or [s for s in SIGNAL_KINDS if s != "cw"],
        samples,
    )
