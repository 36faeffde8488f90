"""Why the floor's sky-wave terms shrink with the capture's length: the LF time signal on the
TDoA simulator's hf network, with and without its sky wave (50–500 µs late, −25…−10 dB, fading
at up to ±0.5 Hz), in the simulator's 0.8–4.2 s captures and in 30 s ones. Prints the median
and RMS error of the pair delays the fixes used, against the ground-wave geometry.

usage: .venv/bin/python scripts/sky_wave_fading.py [JOBS] [SEED]   (60 jobs: ~1.5 min)
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from heimdall.harness.console import format_table
from heimdall.inference.localizer import Localizer
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

LONG_SAMPLES = 360_000  # 30 s at the simulator's 12 001 Hz


def pair_errors_us(localizer: Localizer, config: TdoaSimConfig, jobs: int, seed: int) -> np.ndarray:
    """Each used pair's delay minus the ground-wave truth, µs, over ``jobs`` scenarios."""
    gen = TdoaScenarioGenerator(config, seed=seed)
    errors = []
    for _ in range(jobs):
        scenario = gen.next(kind="time-signal")
        result = localizer.localize(scenario.job.model_copy(update={"method": "tdoa"}))
        if result.status != "ok":
            continue
        flight_s = scenario.flight_s()
        for pair in result.tdoa.pairs:
            errors.append((pair.delay_s - (flight_s[pair.a] - flight_s[pair.b])) * 1e6)
    return np.array(errors)


def main(jobs: int, seed: int) -> None:
    localizer = Localizer(Path("models/v1"))
    rows = []
    for label, samples, count in [("0.8–4.2 s", None, jobs), ("30 s", LONG_SAMPLES, jobs // 3)]:
        for sky in (True, False):
            config = TdoaSimConfig(network="hf")
            if samples:
                config = replace(config, num_samples=(samples, samples))
            if not sky:
                config = replace(config, lf_sky_db=(-300.0, -300.0))
            e = pair_errors_us(localizer, config, count, seed)
            median_us, rms_us = np.median(np.abs(e)), np.sqrt(np.mean(e**2))
            rows.append([label, "yes" if sky else "no", count, len(e),
                         f"{median_us:.2f}", f"{rms_us:.2f}"])  # fmt: skip
            print(f"{label}, sky wave {rows[-1][1]}: {len(e)} pairs", file=sys.stderr)
    print(format_table(["capture", "sky wave", "jobs", "pairs", "median |err| µs", "RMS µs"], rows))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 60,
        int(sys.argv[2]) if len(sys.argv) > 2 else 99,
    )
