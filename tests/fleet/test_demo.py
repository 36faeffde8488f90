"""The README's main command, end to end: with no Redis reachable it brings its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_fleet_and_prints_results():
    env = {
        **os.environ,
        "HEIMDALL_REDIS_URL": "redis://127.0.0.1:1/0",
        "HEIMDALL_METRICS_PORT": "off",
    }
    done = subprocess.run(
        [sys.executable, "-m", "heimdall.cli", "demo", "--jobs", "6", "--concurrency", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "started a private redis-server" in out
    assert "fleet ready: 1 node(s) × 1 children" in out
    assert out.count(" ok ") >= 6
    assert "6/6" in out  # results summary
    assert "submit→result ms" in out  # the column says what it measures
    assert "[demo] done" in out
