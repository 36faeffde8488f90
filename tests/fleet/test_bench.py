"""``heimdall bench`` end to end at a small size: every run it reports completes, every job
gets exactly one result, and the report holds the figures the README and issues quote. No
timing is asserted (DESIGN §9): speed is what the bench prints, not what tests check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]


def test_small_bench_reports_every_run_and_loses_nothing(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--jobs", "24", "--latency-jobs", "10", "--no-scaling", "--no-tdoa", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "heimdall.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    fleet = report["fleet"]
    for name in ("saturated", "saturated_single", "saturated_ci16"):
        assert fleet[name]["results"] == fleet[name]["jobs"] == 24, name
        assert set(fleet[name]["cpu_ms_per_job"]) >= {"worker main process", "worker children"}
    assert fleet["audit"]["lost"] == 0 and fleet["audit"]["stream_duplicates"] == 0
    assert fleet["audit"]["computed_twice_or_more"] == 0
    assert fleet["half_load"]["results"] == 10
    assert report["fleet_to_compute_ratio"] > 0 and report["ci16_to_compute_ratio"] > 0
    features = report["features"]
    assert features["frames"] == 7 * 75
    assert {"features_ms", "bare_fft_ms", "bare_fft_fresh_ms", "ratio"} <= set(features)
    assert "fleet / compute limit" in run.stdout and "bulk, ci16 IQ" in run.stdout
