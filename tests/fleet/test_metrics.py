"""Prometheus exposition of a worker node: children's observations summed by the main process."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from heimdall.redis_server import free_port
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _samples(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_worker_node_exports_job_metrics(fleet):
    port = free_port()
    fleet.start_worker(concurrency=2, HEIMDALL_METRICS_PORT=str(port))
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=300)
    jobs = [gen.next().to_job(job_id=str(uuid.uuid4())) for _ in range(6)]
    few = jobs[-1].model_copy(update={"receivers": jobs[-1].receivers[:2]})
    handles = fleet.producer.submit_many([*jobs[:-1], few])
    for h in handles:
        h.result(60)
    again = jobs[0].model_copy(update={"job_id": str(uuid.uuid4())})  # the same recording
    assert fleet.producer.submit(again).result(60).cache == "hit"
    samples = _samples(port)
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
