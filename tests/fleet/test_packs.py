"""Packs (``heimdall.localize_pack``) with real workers: bulk jobs submitted together share
messages and one ONNX call, yet each job gets exactly one result of its own — with a bad job in
the pack, a job answered before, a child killed mid-pack, and packs the gate must refuse."""

from __future__ import annotations

import math
import os
import signal
import time
import uuid

import pytest

from heimdall.broker.deadletters import DeadLetterBox
from heimdall.broker.envelope import pack_message as raw_pack_message
from heimdall.inference.localizer import Localizer
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _bulk_jobs(n: int, seed: int, num_samples: int = 10_000) -> list:
    cfg = SimConfig(network="reference", missing_probability=0.0, num_samples=num_samples)
    gen = ScenarioGenerator(cfg, seed=seed)
    return [
        gen.next()
        .to_job("ci16_le", job_id=str(uuid.uuid4()))
        .model_copy(update={"priority": "bulk"})
        for _ in range(n)
    ]


def _packs_received(fleet) -> int:
    log = "".join(p.read_text() for p in fleet.log_dir.glob("node*.log"))
    return log.count("Task heimdall.localize_pack[") // 2  # "received" and "succeeded" lines


def test_bulk_jobs_share_messages_and_each_gets_its_own_result(serving_fleet, model_dir):
    f = serving_fleet
    jobs = _bulk_jobs(20, seed=7100)
    answered = _bulk_jobs(1, seed=7101)[0]
    assert f.producer.submit(answered).result(60).status == "ok"  # answered before the pack
    few = jobs[3].model_copy(update={"receivers": jobs[3].receivers[:2]})
    jobs[3] = few
    before = _packs_received(f)
    handles = f.producer.submit_many([*jobs, answered])
    results = [h.result(60) for h in handles]
    assert [r.job_id for r in results] == [j.job_id for j in [*jobs, answered]]
    assert results[3].status == "failed" and results[3].error.code.value == "too_few_receivers"
    assert all(r.status == "ok" for k, r in enumerate(results) if k != 3)
    entries = f.stream_until([j.job_id for j in jobs])
    on_stream = [r.job_id for _, r in entries]
    for job in [*jobs, answered]:
        assert on_stream.count(job.job_id) == 1, job.job_id  # the answered one: not again
        assert f.computations(job.job_id) == 1
    pack_size = f.settings.pack_max_jobs
    deadline = time.monotonic() + 10
    while _packs_received(f) - before < math.ceil(21 / pack_size) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _packs_received(f) - before == math.ceil(21 / pack_size)
    # one ONNX call for many jobs gives each the answer it gets alone
    localizer = Localizer(model_dir)
    for job, result in list(zip(jobs, results, strict=False))[:4]:
        alone = localizer.localize(job)
        assert alone.status == result.status
        if alone.status == "ok":
            assert result.position.lat == pytest.approx(alone.position.lat, abs=1e-7)
            assert result.position.lon == pytest.approx(alone.position.lon, abs=1e-7)


def test_child_killed_mid_pack_publishes_each_job_once(fleet):
    f = fleet
    f.stop_nodes()
    f.start_node(concurrency=1)
    jobs = _bulk_jobs(16, seed=7200, num_samples=25_000)  # ~0.3 s of features in all
    claim_key = f.settings.job_key(jobs[-1].job_id, "claim")
    handles = f.producer.submit_many(jobs)
    deadline = time.monotonic() + 60
    while (holder := f.redis.get(claim_key)) is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert holder is not None, "the pack was never claimed"
    killed = int(holder.decode().rsplit(":", 1)[1])
    os.kill(killed, signal.SIGKILL)
    results = [h.result(90) for h in handles]
    assert all(r.status == "ok" for r in results)
    entries = f.stream_until([j.job_id for j in jobs], timeout_s=60)
    time.sleep(1.0)  # a duplicate, if any, would show up now
    on_stream = [r.job_id for _, r in f.feed.read_stream("0-0")]
    assert all(on_stream.count(j.job_id) == 1 for j in jobs), entries
    assert killed not in f.nodes[0].child_pids()
    computed = [f.computations(j.job_id) for j in jobs]
    assert set(computed) <= {1, 2} and computed.count(2) >= 1, computed  # some were redone


@pytest.mark.redis_broker
def test_gate_refuses_bad_packs_and_answers_their_jobs(fleet):
    f = fleet
    if not f.nodes:
        f.start_node(concurrency=1)
    good = [j.model_dump(mode="json", by_alias=True) for j in _bulk_jobs(2, seed=7300)]
    queue = f.settings.queue("bulk")
    key = f"{f.settings.key_prefix}:{queue}"
    f.redis.lpush(key, raw_pack_message([good[0], good[0]], queue))  # one job id twice
    f.redis.lpush(key, raw_pack_message([good[1], {"job_id": "not-a-uuid"}], queue))
    f.redis.lpush(key, raw_pack_message([], queue))  # empty
    for job in good:
        result = f.producer.app.AsyncResult(job["job_id"]).get(timeout=60)
        assert result["status"] == "failed" and result["error"]["code"] == "invalid_job"
        assert "bad_pack" in result["error"]["message"]
    box = DeadLetterBox(f.redis, f.settings)
    deadline = time.monotonic() + 10
    while len(box.list()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(letter.reason for letter in box.list()) == ["bad_pack"] * 3
