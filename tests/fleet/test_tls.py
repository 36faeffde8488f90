"""Broker and backend over TLS (``rediss://`` with ``ssl_cert_reqs``) and as a Redis ACL user,
against a private redis-server listening on TLS only, with a CA and certificate made here by
``openssl``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import redis

from heimdall.client import Producer
from heimdall.config import Settings
from heimdall.harness.node import WorkerProcess
from heimdall.harness.redis_server import free_port
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]
USER, PASSWORD = "heimdall-fleet", "acl-secret-5e2b"


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "1", "-subj", "/CN=heimdall test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "ext.cnf",
             cwd=d)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no", "--dir", str(d),
         "--user", "default", "off",  # no anonymous access
         "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all"],
        cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    trust = f"ssl_cert_reqs=required&ssl_ca_certs={d / 'ca.crt'}"
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?{trust}"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    yield url, port
    server.terminate()
    server.wait(10)


def test_the_fleet_runs_over_tls_as_an_acl_user(tls_redis, tmp_path):
    url, _ = tls_redis
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=url, key_prefix=prefix, metrics_port=None)
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=77)
    jobs = [gen.next().to_job(job_id=str(uuid.uuid4())) for _ in range(4)]
    with WorkerProcess(settings, 1, log_path=tmp_path / "worker.log"):
        results = [h.result(60) for h in Producer(settings).submit_many(jobs)]
    assert [r.status for r in results] == ["ok"] * 4
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert PASSWORD not in log


@pytest.mark.parametrize("break_it", ["no CA to verify with", "plain redis:// to a TLS port"])
def test_a_connection_that_cannot_be_trusted_fails_clearly(tls_redis, break_it):
    _, port = tls_redis
    bad = (
        f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required"
        if break_it.startswith("no CA")
        else f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
    )
    done = subprocess.run(
        [sys.executable, "-m", "heimdall.cli", "submit", "--simulate", "1"],
        env={**os.environ, "HEIMDALL_REDIS_URL": bad}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot reach Redis" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
