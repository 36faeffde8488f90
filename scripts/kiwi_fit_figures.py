"""Accuracy of the KiwiSDR clock fit on synthetic files written from the layout (stale starts,
no-GNSS blocks, outlier stamps, cut-off ends, random true rates and stamp noise).

usage: .venv/bin/python scripts/kiwi_fit_figures.py [FILES]   (500 files: about 20 s)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kiwiwav import KiwiWavSpec, kiwi_name, write_kiwi_wav
from test_kiwi import FREQ_HZ, STATION, T0_NS, _expected_ns, _first_kept_block

from heimdall.console import Progress, format_table
from heimdall.ingest.kiwi import read_kiwi


def main(files: int) -> None:
    rng = np.random.default_rng(7)
    time_err, rate_err, sigma_ratio = [], [], []
    progress = Progress(files, "files")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(files):
            blocks = int(rng.integers(40, 1500))
            spec = KiwiWavSpec(
                T0_NS + int(rng.integers(0, 10**12)),
                rate_hz=float(rng.uniform(12000.9, 12001.3)),
                blocks=blocks,
                stamp_noise_ns=float(rng.uniform(20, 80)),
                stale_first=int(rng.integers(0, 3)),
                no_gnss=sorted(rng.choice(blocks, int(rng.integers(0, 5)), replace=False)),
                outliers=sorted(rng.choice(blocks, int(rng.integers(0, 3)), replace=False)),
                truncate_bytes=int(rng.integers(0, 2048)),
                seed=k,
            )
            path = Path(tmp) / str(k) / kiwi_name(spec.start_ns, FREQ_HZ, "F1ABC")
            path.parent.mkdir()
            write_kiwi_wav(path, spec)
            rec = read_kiwi(path, STATION)
            time_err.append(abs(rec.time_ns - _expected_ns(spec, _first_kept_block(spec))))
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
