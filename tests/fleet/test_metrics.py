"""Prometheus exposition of a worker node: children's observations summed by the main process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from heimdall.harness.redis_server import free_port
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _samples(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _samples_once(port: int, jobs_total: int, timeout_s: float = 30.0) -> dict:
    """The node's samples once its children have counted ``jobs_total`` finished jobs and run
    none: a child publishes a result before it counts it (a result is counted once it is out,
    so a job requeued by a Redis outage is not counted twice), so a client can hear of a result
    a moment before /metrics shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = _samples(port)
        counted = sum(v for (name, _), v in samples.items() if name == "heimdall_jobs_total")
        idle = samples.get(("heimdall_jobs_in_progress", ()), 0) == 0
        if (counted >= jobs_total and idle) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_worker_node_exports_job_metrics(fleet):
    port = free_port()
    fleet.start_node(concurrency=2, HEIMDALL_METRICS_PORT=str(port))
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=300)
    jobs = [gen.next().to_job(job_id=str(uuid.uuid4())) for _ in range(6)]
    few = jobs[-1].model_copy(update={"receivers": jobs[-1].receivers[:2]})
    handles = fleet.producer.submit_many([*jobs[:-1], few])
    for h in handles:
        h.result(60)
    again = jobs[0].model_copy(update={"job_id": str(uuid.uuid4())})  # the same recording
    assert fleet.producer.submit(again).result(60).cache == "hit"
    samples = _samples_once(port, jobs_total=7)
    ok = (("code", ""), ("method", "rss"), ("model", "v1"), ("status", "ok"))
    assert samples[("heimdall_jobs_total", ok)] == 6
    few_labels = (("code", "too_few_receivers"), ("method", ""), ("model", "v1"))
    assert samples[("heimdall_jobs_total", (*few_labels, ("status", "failed")))] == 1
    assert samples[("heimdall_cache_misses_total", ())] == 6
    assert samples[("heimdall_cache_hits_total", ())] == 1
    assert samples[("heimdall_job_stage_seconds_count", (("stage", "inference"),))] == 5
    assert samples[("heimdall_job_stage_seconds_count", (("stage", "total"),))] == 7
    assert samples[("heimdall_session_loads_total", ())] == 2  # two children, one model
    assert not any("job_id" in dict(labels) for _, labels in samples)


DESIGN_13 = [
    "heimdall_jobs_total", "heimdall_job_stage_seconds", "heimdall_cache_hits_total",
    "heimdall_cache_misses_total", "heimdall_model_reloads_total", "heimdall_queue_length",
    "heimdall_ellipse_semi_major_meters", "heimdall_dead_letters_total",
    "heimdall_jobs_in_progress", "heimdall_worker_up",
]  # fmt: skip


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_readyz_is_503_while_the_node_boots_then_200_and_every_metric_is_exported(fleet):
    fleet.stop_nodes()  # this node alone serves the job below
    port = free_port()
    env = {**os.environ, **fleet.env, "HEIMDALL_METRICS_PORT": str(port)}
    node = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "worker", "--concurrency", "2"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not seen or seen[-1] != 200):
            with contextlib.suppress(urllib.error.URLError, ConnectionError):  # not listening yet
                seen.append(_get(port, "/readyz")[0])
            time.sleep(0.02)
        assert seen[0] == 503 and seen[-1] == 200, seen[:5]
        assert _get(port, "/healthz") == (200, b"ok\n")
        assert _listening_addresses(port) == {"127.0.0.1"}  # DESIGN §13: loopback unless told
        ready = json.loads(_get(port, "/readyz")[1])
        assert ready["children"] == ready["children_on_current_models"] == 2
        gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=310)
        for h in fleet.producer.submit_many([gen.next().to_job(job_id=str(uuid.uuid4()))]):
            h.result(60)
        samples = _samples_once(port, jobs_total=1)
        names = {family.name for family in _families(port)}
        missing = [n for n in DESIGN_13 if n.removesuffix("_total") not in names]
        assert not missing, missing
        assert samples[("heimdall_worker_up", ())] == 1
        assert samples[("heimdall_model_reloads_total", (("result", "refused"),))] == 0
        assert samples[("heimdall_jobs_in_progress", ())] == 0
        assert samples[("heimdall_ellipse_semi_major_meters_count", ())] >= 1
        queue = fleet.settings.queue("interactive")
        assert samples[("heimdall_queue_length", (("queue", queue),))] == 0
    finally:
        node.terminate()
        node.wait(60)


def _families(port: int):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return list(text_string_to_metric_families(text))


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses a socket listens on at ``port``, from /proc/net/tcp (state 0A: LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found
