"""What a new user meets first, driven through the real command against a real Redis with no
worker running: a status that says so by its exit code, a `--wait` that times out cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _heimdall(fleet, *argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", *argv], env={**os.environ, **fleet.env},
        capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


def test_status_with_no_worker_exits_1(fleet):
    done = _heimdall(fleet, "status", "--timeout", "0.5")
    assert done.returncode == 1
    assert "no worker answered" in done.stdout and "Traceback" not in done.stderr


def test_submit_wait_with_nobody_answering_ends_without_a_traceback(fleet):
    done = _heimdall(fleet, "submit", "--simulate", "1", "--wait", "--timeout", "1")
    assert done.returncode == 1
    assert "no result for job" in done.stderr and "is a worker running?" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
