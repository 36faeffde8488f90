"""The store's pipelined publication against a real Redis and Celery's own backend reader:
results land in the backend exactly as Celery stores them, once, with cache and batch, and
survive a Redis that lost its scripts."""

from __future__ import annotations

import uuid

import pytest

from heimdall.broker.results import CeleryResultRecord
from heimdall.config import Settings
from heimdall.config.celery import celery_app
from heimdall.schemas.result import Result
from heimdall.store import JobBooks, JobClaim, store_client

pytestmark = pytest.mark.redis_broker


@pytest.fixture
def books(redis_server):
    settings = Settings(redis_url=redis_server.url, key_prefix=f"l{uuid.uuid4().hex[:8]}")
    app = celery_app(settings, "test-books_")
    yield JobBooks(store_client(settings.redis_url), settings), CeleryResultRecord(app.backend)
    app.close()


def _result(job_id: str, status: str = "ok", batch_id: str | None = None) -> Result:
    if status == "ok":
        return Result(job_id=job_id, status="ok", model_version="v1", batch_id=batch_id)
    return Result.failed(job_id, "no_signal", "nothing heard")


def test_publish_many_stores_publishes_caches_and_counts_once(books):
    books_, record = books
    s = books_.settings
    batch_id = str(uuid.uuid4())
    books_.redis.hset(s.batch_key(batch_id), mapping={"total": 3})
    ids = [str(uuid.uuid4()) for _ in range(3)]
    answers = [
        (_result(ids[0], batch_id=batch_id), None, "k0"),
        (_result(ids[1], "failed"), None, "k1"),
        (_result(ids[2], batch_id=batch_id), None, None),
    ]
    answers[1][0].batch_id = batch_id
    books_.publication.publish_many(record, answers)
    books_.publication.publish_many(record, answers)  # a second delivery publishes nothing new
    for job_id, status in zip(ids, ["ok", "failed", "ok"], strict=True):
        meta = record.backend.get_task_meta(job_id)
        assert meta["status"] == "SUCCESS" and meta["result"]["status"] == status
    entries = books_.redis.xrange(s.results_stream)
    assert sorted(e[1][b"job_id"].decode() for e in entries if b"job_id" in e[1]) == sorted(ids)
    assert books_.redis.exists(s.cache_key("k0")) and not books_.redis.exists(s.cache_key("k1"))
    record = books_.redis.hgetall(s.batch_key(batch_id))
    assert record[b"ended"] == b"3"  # counted once each, whatever the deliveries
    assert sum(e[1].get(b"kind") == b"batch" for e in entries) == 1


def test_scripts_lost_by_a_restarted_redis_are_loaded_again(books):
    books_, record = books
    books_.redis.script_flush()
    job_id = str(uuid.uuid4())
    assert books_.claims.begin_many([job_id], "here:1") == [(JobClaim.CLAIMED, 1)]
    books_.redis.script_flush()
    books_.publication.publish_many(record, [(_result(job_id), None, None)])
    assert record.backend.get_task_meta(job_id)["status"] == "SUCCESS"
    assert books_.claims.begin_many([job_id], "here:1") == [(JobClaim.DONE, 0)]


def test_redis_gone_while_fetching_blobs_reaches_the_task_not_a_failed_result(books):
    """The task turns a Redis error into a requeue; compute_many must not answer the job."""
    import redis

    from heimdall.inference.payloads import PayloadsUnavailable
    from heimdall.sim import ScenarioGenerator, SimConfig
    from heimdall.tasks.localize import compute_many

    books_, _ = books
    gone = JobBooks(redis.Redis(port=1, socket_connect_timeout=0.2), books_.settings)
    job = ScenarioGenerator(SimConfig(network="reference"), seed=12).next().to_job(
        job_id=str(uuid.uuid4())
    )
    receivers = [
        r.model_copy(update={"iq_b64": None, "iq_ref": f"nowhere:{i}"})
        for i, r in enumerate(job.receivers)
    ]
    job = job.model_copy(update={"receivers": receivers})
    with pytest.raises(PayloadsUnavailable):
        compute_many([(job.job_id, job.model_dump(mode="json", by_alias=True))], gone)
