"""The live path end to end, without receivers: `heimdall emulate kiwi --simulate` (four
emulated KiwiSDR receivers hearing a simulated 77.5 kHz time-signal station: ground wave, sky
wave, receiver biases) → `heimdall acquire kiwi` over websockets (real time) → files →
`ingest kiwi` → localize: per set, what acquire recorded, the error and whether the 95 %
ellipse holds the truth.

usage: .venv/bin/python scripts/live_acquire_figures.py [SETS] [SECONDS]   (5 × 15 s: ~2 min)
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from heimdall.harness.console import format_table
from heimdall.harness.emulated_kiwis import emulated_kiwis
from heimdall.harness.scoring import error_m, inside_ellipse
from heimdall.inference.localizer import Localizer
from heimdall.ingest import assemble
from heimdall.ingest.kiwi import read_sets


def one_set(seed: int, seconds: float, localizer: Localizer) -> list:
    with (
        emulated_kiwis("--simulate", "--receivers", "4", "--seed", str(seed), "--seconds",
                       str(max(60.0, 3 * seconds)), count=4) as kiwis,
        tempfile.TemporaryDirectory() as out,
    ):  # fmt: skip
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "heimdall.cli", "acquire", "kiwi", *kiwis.addresses,
             "--freq-khz", "77.5", "--seconds", f"{seconds:g}", "--out", out],
            capture_output=True, text=True,
        )  # fmt: skip
        wall_s = time.monotonic() - began
        if done.returncode != 0:
            return [seed, f"acquire exit {done.returncode}", "", "", "", ""]
        (found,) = read_sets(sorted(Path(out).glob("*.wav")))
        result = localizer.localize(assemble(found).job)
    if result.status != "ok":
        return [seed, f"{wall_s:.1f}", result.error.code.value, "", "", ""]
    lat, lon = kiwis.truth
    e = error_m(result, lat, lon)
    axes = result.ellipse
    return [seed, f"{wall_s:.1f}", len(found.recordings), f"{e / 1e3:.2f}",
            f"{axes.semi_major_m / 1e3:.1f} × {axes.semi_minor_m / 1e3:.1f}",
            "yes" if inside_ellipse(result, lat, lon) else "no"]  # fmt: skip


def main(sets: int, seconds: float) -> None:
    localizer = Localizer(Path("models/v1"))
    rows = []
    for seed in range(1, sets + 1):
        rows.append(one_set(seed, seconds, localizer))
        print(f"set {seed}/{sets} done", file=sys.stderr, flush=True)
    headers = ["seed", "acquire wall s", "receivers", "error km", "95 % ellipse km", "truth in"]
    print(format_table(headers, rows))
    errors = [float(r[3]) for r in rows if r[3] not in ("", None)]
    if errors:
        inside = sum(r[5] == "yes" for r in rows)
        print(f"median error {np.median(errors):.2f} km, truth inside {inside}/{len(errors)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5,
         float(sys.argv[2]) if len(sys.argv) > 2 else 15.0)  # fmt: skip
