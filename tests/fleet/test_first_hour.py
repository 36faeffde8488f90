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


def test_flower_from_the_procfile_gets_a_random_password_kept_in_a_file(fleet, tmp_path):
    import base64
    import time
    import urllib.error
    import urllib.request

    from heimdall.harness.redis_server import free_port

    port, secret = free_port(), tmp_path / ".flower-password"
    env = {k: v for k, v in {**os.environ, **fleet.env}.items() if k != "HEIMDALL_FLOWER_PASSWORD"}
    flower = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "flower", "--port", str(port),
         "--password-file", str(secret)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def status(auth: str | None) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/workers")
        if auth:
            request.add_header("Authorization", f"Basic {base64.b64encode(auth.encode()).decode()}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline, answer = time.monotonic() + 60, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = status(None)
            except (urllib.error.URLError, ConnectionError):  # not listening yet
                time.sleep(0.2)
        assert answer == 401, "Flower answered without a password"
        password = secret.read_text().strip()
        assert len(password) >= 16 and secret.stat().st_mode & 0o777 == 0o600
        assert status(f"heimdall:{password}") == 200
        assert status("heimdall:heimdall") == 401
    finally:
        flower.kill()
        flower.wait(10)


def test_served_means_a_node_said_so_lately(fleet):
    import json
    import time

    from heimdall.client.producer import served_versions

    key, now = fleet.settings.served_by_key, time.time()
    fleet.redis.hset(key, "fresh@a", json.dumps({"versions": ["v1", "v2"], "at": now}))
    fleet.redis.hset(key, "silent@b", json.dumps({"versions": ["v9"], "at": now - 3600}))
    fleet.redis.hset(key, "broken@c", "not json")
    try:
        assert served_versions(fleet.redis, fleet.settings) == {"v1", "v2"}
    finally:
        fleet.redis.delete(key)
