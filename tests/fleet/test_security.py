"""Security by configuration: Flower needs a real password; no credential in any message or
log line of a failed connection (a private redis-server with requirepass)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from heimdall.harness.redis_server import PrivateRedis

SECRET = "wrong-but-secret-7f3a"


def _heimdall(
    *argv: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", *argv], env={**os.environ, **env},
        capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


@pytest.mark.parametrize("password", [None, "heimdall", "short"])
def test_flower_refuses_to_start_without_a_real_password(password):
    env = {"HEIMDALL_FLOWER_PASSWORD": password} if password else {}
    if password is None:
        env["HEIMDALL_FLOWER_PASSWORD"] = ""
    done = _heimdall("flower", env=env)
    assert done.returncode == 2
    assert "HEIMDALL_FLOWER_PASSWORD" in done.stderr and "refusing" in done.stderr


@pytest.fixture(scope="module")
def locked_redis():
    with PrivateRedis(password="the-right-one-9c1d") as server:
        yield server


def test_a_wrong_password_is_never_echoed_by_commands(locked_redis):
    url = f"redis://:{SECRET}@127.0.0.1:{locked_redis.port}/0"
    for argv in (["submit", "--simulate", "1"], ["status"], ["ab", "show"]):
        done = _heimdall(*argv, env={"HEIMDALL_REDIS_URL": url})
        assert done.returncode != 0, argv
        assert SECRET not in done.stdout + done.stderr, argv
    assert "redis://:**@127.0.0.1" in done.stderr


@pytest.mark.slow
def test_a_worker_with_a_wrong_password_logs_no_credential(locked_redis, tmp_path):
    url = f"redis://:{SECRET}@127.0.0.1:{locked_redis.port}/0"
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "heimdall.cli", "worker", "--concurrency", "1"],
            env={**os.environ, "HEIMDALL_REDIS_URL": url, "HEIMDALL_METRICS_PORT": "off"},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        time.sleep(8)
        worker.kill()
        worker.wait()
    text = log.read_text(errors="replace")
    assert text  # it did say something about the failure
    assert SECRET not in text
