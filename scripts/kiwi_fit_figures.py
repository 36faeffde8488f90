"""Accuracy of the KiwiSDR clock fit on synthetic files written from the layout (stale starts,
no-GNSS blocks, outlier stamps, cut-off ends, random true rates and stamp noise).

usage: .venv/bin/python scripts/kiwi_fit_figures.py [FILES]   (500 files: about 20 s)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kiwiwav import expected_ns, first_kept_block, kiwi_name, random_spec, write_kiwi_wav

from heimdall.harness.console import Progress, format_table
from heimdall.ingest.kiwi import read_kiwi

T0_NS = 1_795_000_000_123_456_789
FREQ_HZ = 10_000_000
STATION = {"F1ABC": (48.85, 2.35, 35.0)}


def main(files: int) -> None:
    rng = np.random.default_rng(7)
    time_err, rate_err, sigma_ratio = [], [], []
    progress = Progress(files, "files")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(files):
            spec = random_spec(rng, T0_NS, seed=k, max_blocks=1500)
            path = Path(tmp) / str(k) / kiwi_name(spec.start_ns, FREQ_HZ, "F1ABC")
            path.parent.mkdir()
            write_kiwi_wav(path, spec)
            rec = read_kiwi(path, STATION)
            time_err.append(abs(rec.time_ns - expected_ns(spec, first_kept_block(spec))))
            rate_err.append(abs(rec.sample_rate_hz / spec.rate_hz - 1) * 1e6)
            sigma_ratio.append(rec.clock.uncertainty_ns / spec.stamp_noise_ns)
            progress.update(k + 1)
    rows = [
        [name, f"{np.median(v):.4g}", f"{np.percentile(v, 99):.4g}", f"{np.max(v):.4g}"]
        for name, v in (
            ("|first-sample time error| ns", time_err),
            ("|rate error| ppm", rate_err),
            ("fitted σ / true σ", sigma_ratio),
        )
    ]
    print(format_table(["over " + str(files) + " files", "median", "p99", "max"], rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
