"""Live acquisition through the fleet: `heimdall emulate kiwi` processes stand in for KiwiSDR
receivers, `heimdall acquire kiwi` records them over websockets and submits, real workers
answer. Failures are named per receiver; a set below three is refused; `--every` makes one job
per round."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from heimdall.geo.distance import geodesic_m
from heimdall.harness.emulated_kiwis import emulated_kiwis

pytestmark = pytest.mark.slow


def _acquire(fleet, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", "acquire", "kiwi", *args, "--freq-khz", "77.5"],
        env={**os.environ, **fleet.env}, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


@pytest.fixture(scope="module")
def simulated_receivers():
    """Live: each capture another stretch of the simulated broadcast."""
    with emulated_kiwis("--simulate", "--receivers", "3", "--seed", "11", "--seconds", "90",
                        count=3) as kiwis:  # fmt: skip
        yield kiwis.addresses, kiwis.truth


@pytest.fixture(scope="module")
def replayed_receivers():
    """Not live: every connection from the recording's start, so the capture is the same
    stretch on every run (a fixed seed → the same fix)."""
    with emulated_kiwis("--simulate", "--no-live", "--receivers", "3", "--seed", "11",
                        "--seconds", "30", count=3) as kiwis:  # fmt: skip
        yield kiwis.addresses, kiwis.truth


def test_three_receivers_recorded_live_give_a_tdoa_fix(
    serving_fleet, replayed_receivers, tmp_path
):
    receivers, truth = replayed_receivers
    done = _acquire(serving_fleet, *receivers, "--seconds", "10", "--out", str(tmp_path),
                    "--submit", "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    (line,) = done.stdout.strip().splitlines()  # --json: nothing but the result on stdout
    result = json.loads(line)
    assert result["status"] == "ok" and result["method"] == "tdoa"
    assert sorted(result["receivers_used"]) == ["rx00", "rx01", "rx02"]
    error_km = float(geodesic_m(result["position"]["lat"], result["position"]["lon"], *truth)) / 1e3
    assert error_km < 50.0, result  # 10 s of a 77.5 kHz time signal over 300–700 km baselines
    assert len(list(tmp_path.glob("*_77500_rx*_iq.wav"))) == 3
    assert "recorded" in done.stderr  # the receivers table, for people


def test_failures_are_named_and_a_set_below_three_is_refused(
    serving_fleet, simulated_receivers, tmp_path
):
    receivers, _ = simulated_receivers
    wav = tmp_path / "src"
    subprocess.run([sys.executable, "-m", "heimdall.cli", "simulate", "--kind", "tdoa",
                    "--network", "hf", "--signal", "time-signal", "--seconds", "20", "--jobs",
                    "1", "--kiwi", str(wav)], check=True, capture_output=True)  # fmt: skip
    source = sorted(wav.glob("*/*_iq.wav"))[0]
    with (
        emulated_kiwis("--replay", str(source), "--no-gnss", count=1) as nofix,
        emulated_kiwis("--replay", str(source), "--busy", count=1) as busy,
    ):
        nofix_at, busy_at = f"127.0.0.1:{nofix.ports[0]}", f"127.0.0.1:{busy.ports[0]}"
        fine = _acquire(serving_fleet, *receivers, f"{nofix_at}=nofix", f"{busy_at}=busy",
                        "--seconds", "4", "--out", str(tmp_path / "a"))  # fmt: skip
        refused = _acquire(serving_fleet, *receivers[:2], f"{busy_at}=busy", "--seconds", "4",
                           "--out", str(tmp_path / "b"), "--submit")  # fmt: skip
    assert fine.returncode == 0, fine.stderr
    assert re.search(r"nofix .*left out \(no_gnss\): no GNSS fix", fine.stdout), fine.stdout
    assert re.search(r"busy .*left out \(busy\): all 4 channels are in use", fine.stdout)
    assert "next: heimdall ingest kiwi" in fine.stdout
    assert refused.returncode == 1
    assert "refused: 2 receiver(s) recorded; a time-difference fix needs 3" in refused.stderr
    assert "submitted" not in refused.stderr


def test_every_round_is_one_job(serving_fleet, simulated_receivers, tmp_path):
    receivers, _ = simulated_receivers
    done = _acquire(serving_fleet, *receivers, "--seconds", "3", "--every", "6", "--rounds", "3",
                    "--out", str(tmp_path), "--submit")  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_ids = [line for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f-]{36}", line)]
    assert len(job_ids) == 3 and len(set(job_ids)) == 3  # live: each round another stretch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-001", "round-002", "round-003"]
    entries = serving_fleet.stream_until(job_ids, timeout_s=120)
    results = {r.job_id: r for _, r in entries if r.job_id in job_ids}
    assert set(results) == set(job_ids)  # every round answered (its figures: other tests)
    assert all(r.method == "tdoa" for r in results.values() if r.status == "ok")


def test_acquire_refuses_bad_options_naming_them(serving_fleet):
    done = _acquire(serving_fleet, "127.0.0.1:1=a", "--seconds", "0")
    assert done.returncode == 2 and "--seconds 0" in done.stderr
    done = _acquire(serving_fleet, "bad host:x", "--seconds", "2")
    assert done.returncode == 2 and "receiver 'bad host:x'" in done.stderr
