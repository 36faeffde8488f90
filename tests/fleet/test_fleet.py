"""End to end through real Redis and real Celery workers: nothing lost, nothing twice."""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest

from heimdall.config.celery import TASK_NAME
from heimdall.dsp.iq import encode_iq
from heimdall.schemas import IQJob
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _jobs(n: int, seed: int) -> list[IQJob]:
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=seed)
    return [gen.next().to_job(job_id=str(uuid.uuid4())) for _ in range(n)]


def _collect(feed, pubsub, job_ids: set[str], timeout_s: float = 120.0) -> dict:
    got = {}
    for result in feed.listen(pubsub, timeout_s=timeout_s):
        if result.job_id in job_ids:
            got[result.job_id] = result
        if len(got) == len(job_ids):
            break
    return got


def test_results_reach_backend_pubsub_and_stream(serving_fleet):
    f = serving_fleet
    jobs = _jobs(12, seed=100)
    ids = {j.job_id for j in jobs}
    pubsub = f.feed.open_subscription()
    handles = f.producer.submit_many(jobs)
    assert [h.job_id for h in handles] == [j.job_id for j in jobs]
    live = _collect(f.feed, pubsub, ids)
    pubsub.close()
    assert set(live) == ids
    backend = {h.job_id: h.result(timeout_s=60) for h in handles}
    assert all(r.status == "ok" for r in backend.values()), [r.error for r in backend.values()]
    for job_id, result in backend.items():
        assert result.job_id == job_id
        assert live[job_id].position == result.position
    streamed = f.stream_job_ids()
    assert ids <= set(streamed)
    assert len([i for i in streamed if i in ids]) == len(ids)
    # the IQ blobs are released once results are stored
    assert not f.redis.keys(f"{f.settings.key_prefix}:iq:*")


def test_redis_subscriber_sees_the_result_json(serving_fleet):
    f = serving_fleet
    pubsub = f.redis.pubsub()  # plain redis-py, as `redis-cli SUBSCRIBE` would see it
    pubsub.subscribe(f.settings.results_channel)
    assert pubsub.get_message(timeout=10)["type"] == "subscribe"
    job = _jobs(1, seed=101)[0]
    f.producer.submit(job).result(timeout_s=60)
    message = pubsub.get_message(timeout=10)
    pubsub.close()
    assert message["type"] == "message"
    body = json.loads(message["data"])
    assert body["job_id"] == job.job_id and body["schema"] == "heimdall.result/1"
    assert body["geojson"]["type"] == "FeatureCollection"


def test_late_consumer_catches_up_from_the_stream(serving_fleet):
    f = serving_fleet
    first = _jobs(4, seed=102)
    for h in f.producer.submit_many(first):
        h.result(timeout_s=60)  # nobody was subscribed while these finished
    entries = f.stream_until({j.job_id for j in first})
    assert {j.job_id for j in first} <= {r.job_id for _, r in entries}
    last_id = entries[-1][0]
    later = _jobs(3, seed=103)
    for h in f.producer.submit_many(later):
        h.result(timeout_s=60)
    caught_up = [r.job_id for _, r in f.stream_until({j.job_id for j in later}, last_id)]
    assert sorted(caught_up) == sorted(j.job_id for j in later)


def test_duplicate_submission_computes_once(serving_fleet):
    f = serving_fleet
    job = _jobs(1, seed=104)[0]
    handles = [f.producer.submit(job) for _ in range(3)]  # back to back: two may run at once
    results = [h.result(timeout_s=60) for h in handles]
    assert {r.position.lat for r in results} == {results[0].position.lat}
    again = f.producer.submit(job).result(timeout_s=60)  # long after it finished
    assert again.completed_at == results[0].completed_at
    f.producer.submit(_jobs(1, seed=105)[0]).result(timeout_s=60)  # queue drained past them
    assert f.computations(job.job_id) == 1
    assert f.stream_job_ids().count(job.job_id) == 1


def test_malformed_jobs_fail_with_codes_and_the_worker_keeps_serving(serving_fleet):
    f = serving_fleet
    few = _jobs(1, seed=106)[0]
    few = few.model_copy(update={"receivers": few.receivers[:2]})
    gone = json.loads(_jobs(1, seed=107)[0].to_json())
    gone["receivers"][0].pop("iq_b64")
    gone["receivers"][0]["iq_ref"] = f"{f.settings.key_prefix}:iq:never-written:0"
    bad_field = json.loads(_jobs(1, seed=108)[0].to_json())
    bad_field["receivers"][1]["lat"] = 99.0
    unknown = _jobs(1, seed=109)[0].model_copy(update={"model": "v999"})

    assert f.producer.submit(few).result(60).error.code == "too_few_receivers"
    assert f.producer.submit(unknown).result(60).error.code == "unknown_model"
    for raw, code, field in [
        (gone, "payload_missing", "never-written"),
        (bad_field, "invalid_job", "receivers.1.lat"),
        ({"job_id": str(uuid.uuid4()), "garbage": True}, "invalid_job", "receivers"),
    ]:
        f.producer.app.send_task(
            TASK_NAME, args=[raw], task_id=raw["job_id"], queue=f.settings.queue("interactive")
        )
        result = f.producer.app.AsyncResult(raw["job_id"]).get(timeout=60)
        assert result["status"] == "failed"
        assert result["error"]["code"] == code and field in result["error"]["message"]
    # failures are published like successes, and the worker still serves
    assert few.job_id in f.stream_job_ids()
    assert f.producer.submit(_jobs(1, seed=110)[0]).result(60).status == "ok"


def test_inline_iq_message_from_any_celery_client(serving_fleet):
    """What a non-Python producer sends: the job JSON with iq_b64, task id = job id."""
    f = serving_fleet
    sc = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=111).next()
    job_id = str(uuid.uuid4())
    message = {
        "schema": "heimdall.iqjob/1",
        "job_id": job_id,
        "submitted_at": "2026-11-27T12:00:00Z",
        "receivers": [
            {
                "receiver_id": s.receiver_id,
                "lat": s.lat,
                "lon": s.lon,
                "alt_m": s.alt_m,
                "sample_rate_hz": 50_000,
                "center_frequency_hz": 145.5e6,
                "start_time": "2026-11-27T12:00:00Z",
                "datatype": "ci16_le",
                "num_samples": x.size,
                "iq_b64": base64.b64encode(encode_iq(x, "ci16_le")).decode(),
            }
            for s, x in zip(sc.stations, sc.iq, strict=True)
        ],
    }
    f.producer.app.send_task(
        TASK_NAME, args=[message], task_id=job_id, queue=f"{f.settings.key_prefix}.jobs.interactive"
    )
    result = f.producer.app.AsyncResult(job_id).get(timeout=60)
    assert result["status"] == "ok" and len(result["receivers_used"]) == len(sc.stations)


def test_redelivery_cap_gives_a_failed_result(serving_fleet):
    f = serving_fleet
    job = _jobs(1, seed=112)[0]
    # as if the worker running it had been lost max_attempts times already
    cap = f.settings.max_attempts
    f.redis.set(f.settings.job_key(job.job_id, "attempts"), cap)
    result = f.producer.submit(job).result(60)
    assert result.status == "failed" and result.error.code == "internal"
    assert "taken by a worker" in result.error.message
    assert f.computations(job.job_id) == cap + 1


def test_job_held_by_a_lost_worker_is_computed_after_its_claim_expires(serving_fleet):
    f = serving_fleet
    job = _jobs(1, seed=115)[0]
    # a child that took the job and died: its claim outlives it until it expires
    f.redis.set(f.settings.job_key(job.job_id, "claim"), "dead-child", px=3000)
    handle = f.producer.submit(job)
    result = handle.result(60)
    assert result.status == "ok"
    assert f.computations(job.job_id) == 1
    assert (result.completed_at.timestamp() - handle.submitted_s) > 2.5  # waited, not dropped


def test_onnx_session_is_created_once_per_child(serving_fleet):
    f = serving_fleet
    for h in f.producer.submit_many(_jobs(20, seed=113)):
        h.result(60)
    loads = {k.decode(): int(v) for k, v in f.redis.hgetall(f.settings.session_loads_key).items()}
    assert len(loads) == 2  # one node, two prefork children, many tasks
    assert set(loads.values()) == {1}
    workers = {r.worker for _, r in f.feed.read_stream("0-0") if r.worker}
    assert workers <= set(loads)
    assert len(workers) == 2


def test_results_are_accurate(serving_fleet):
    """The fleet returns the same numbers the in-process Localizer does."""
    from heimdall.inference import Localizer

    f = serving_fleet
    local = Localizer(f.settings.models_dir / f.settings.default_model)
    jobs = _jobs(3, seed=114)
    remote = [h.result(60) for h in f.producer.submit_many(jobs)]
    for job, r in zip(jobs, remote, strict=True):
        expected = local.localize(job)
        np.testing.assert_allclose(r.covariance_en_m2, expected.covariance_en_m2, rtol=1e-6)
        assert r.position.lat == pytest.approx(expected.position.lat, abs=1e-9)


@pytest.mark.redis_broker
def test_plain_lpush_of_the_documented_message(serving_fleet):
    """The README's raw message: a producer with only a Redis client (no Celery) enqueues."""
    f = serving_fleet
    job = json.loads(_jobs(1, seed=116)[0].to_json())  # iq_b64 inline
    job_id = job["job_id"]
    queue = f.settings.queue("interactive")
    body = [[job], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    message = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": "heimdall.localize",
            "id": job_id,
            "root_id": job_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "timelimit": [None, None],
            "origin": "ingest-go",
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    f.redis.lpush(f"{f.settings.key_prefix}:{queue}", json.dumps(message))
    result = f.producer.app.AsyncResult(job_id).get(timeout=60)
    assert result["status"] == "ok" and result["job_id"] == job_id
