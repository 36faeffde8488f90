"""Three-station LF time-signal sets the way real ones arrive: DCF77-like emission at 77.5 kHz
(ground wave, a daytime sky wave 50–500 µs late, ±3 µs receiver biases), 30 s at 12 kHz per
station 300–700 km apart, written as KiwiSDR IQ WAVs with GNSS stamps, read back by ingest and
localized by time: error, 95 % ellipse, whether it holds the truth (or, when the fix shows two
crossings, the other crossing's ellipse does), TDoA time per set; the summary splits the sets
whose transmitter is inside the stations' triangle from those outside it (the harder geometry:
the hyperbolae cross at a shallow angle).

usage: .venv/bin/python scripts/lf_time_signal_sets.py [SETS] [SEED]   (12 sets: ~1 min)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import format_table
from heimdall.harness.scoring import error_m, inside_an_ellipse, inside_ellipse
from heimdall.inference.localizer import Localizer
from heimdall.ingest import assemble
from heimdall.ingest.kiwi import read_sets
from heimdall.sim.kiwiwav import write_kiwi_set
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

SAMPLES = 360_000  # 30 s at the simulator's 12 001 Hz


def inside_triangle(scenario) -> bool:
    """The transmitter lies inside the triangle of the three stations (local east/north)."""
    frame = LocalFrame(scenario.true_lat, scenario.true_lon)
    corners = [frame.to_enu(s.lat, s.lon)[:2] for s in scenario.stations]
    # the origin (the transmitter) is on the same side of every edge a → b
    sides = [
        (b[0] - a[0]) * -a[1] - (b[1] - a[1]) * -a[0]
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True)
    ]
    return bool(all(v > 0 for v in sides) or all(v < 0 for v in sides))


def summary(label: str, errors, held, held_any, semi_major_m) -> str:
    if not errors:
        return f"{label}: no sets"
    return (f"{label}: {len(errors)} sets, median error {np.median(errors) / 1e3:.2f} km, truth "
            f"inside {sum(held)}/{len(held)} (the estimate's or the other crossing's: "
            f"{sum(held_any)}), median 95 % semi-major {np.median(semi_major_m) / 1e3:.1f} km")


def main(sets: int, seed: int) -> None:
    localizer = Localizer(Path("models/v1"))
    config = TdoaSimConfig(
        network="hf",
        num_samples=(SAMPLES, SAMPLES),
        random_receivers=(3, 3),
        hf_extent_m=(300_000.0, 700_000.0),
    )
    gen = TdoaScenarioGenerator(config, seed=seed)
    rows, errors, held, held_any, semi_major_m, seconds, within = [], [], [], [], [], [], []
    for i in range(sets):
        scenario = gen.next(kind="time-signal")
        with tempfile.TemporaryDirectory() as tmp:
            (found,) = read_sets(write_kiwi_set(scenario.job, Path(tmp), stamp_noise_ns=40.0))
            result = localizer.localize(assemble(found).job)
        where = "inside" if inside_triangle(scenario) else "outside"
        if result.status != "ok":
            rows.append([i, where, result.error.code.value, "-", "-", "-", "-", "-"])
            continue
        within.append(where == "inside")
        e = error_m(result, scenario.true_lat, scenario.true_lon)
        inside = inside_ellipse(result, scenario.true_lat, scenario.true_lon)
        errors.append(e)
        held.append(inside)
        held_any.append(inside_an_ellipse(result, scenario.true_lat, scenario.true_lon))
        semi_major_m.append(result.ellipse.semi_major_m)
        seconds.append(result.timings_ms.tdoa / 1000)
        axes = result.ellipse
        ellipse = f"{axes.semi_major_m / 1e3:.1f} × {axes.semi_minor_m / 1e3:.1f}"
        rows.append([i, where, f"{e / 1e3:.2f}", ellipse, "yes" if inside else "no",
                     "yes" if held_any[-1] else "no", "yes" if result.tdoa.ambiguous else "",
                     f"{seconds[-1]:.2f}"])  # fmt: skip
    headers = ["set", "transmitter", "error km", "95 % ellipse km", "truth in", "in a crossing's",
               "ambiguous", "tdoa s"]  # fmt: skip
    print(format_table(headers, rows))
    if errors:
        print(summary("all", errors, held, held_any, semi_major_m)
              + f", tdoa time {min(seconds):.2f}–{max(seconds):.2f} s")  # fmt: skip
        for label, keep in (("inside the triangle", True), ("outside it", False)):
            pick = [k for k, w in enumerate(within) if w == keep]
            print(summary(label, *([v[k] for k in pick]
                                   for v in (errors, held, held_any, semi_major_m))))  # fmt: skip


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 12,
        int(sys.argv[2]) if len(sys.argv) > 2 else 2020,
    )
