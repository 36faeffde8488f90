"""No message can stop a node: hostile messages by raw LPUSH and by a bare Celery client,
good jobs in between; the node stays up, serves the good jobs and records a dead letter each."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from celery import Celery

from heimdall.broker.envelope import job_message as raw_message
from heimdall.broker.envelope import task_envelope
from heimdall.cli.status import fleet_status
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]  # raw messages into Redis lists

DEEP = json.loads("[" * 900 + "]" * 900)


def _envelope(body: bytes, queue: str, task: str = "heimdall.localize", task_id=None) -> str:
    """A well-formed kombu envelope around an arbitrary body."""
    return task_envelope(body, queue, task, str(uuid.uuid4()) if task_id is None else task_id)


def _item(body, queue: str, **kw) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _envelope(raw, queue, **kw).encode()


def _good_jobs(n: int, seed: int) -> list:
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=seed)
    return [gen.next().to_job("ci16_le", job_id=str(uuid.uuid4())) for _ in range(n)]


def _raw_poison(queue: str) -> list[tuple[bytes, str | None]]:
    """(queue item, job id whose failed result must be published or None)."""
    job_id = str(uuid.uuid4())
    empty_id_job = {"job_id": job_id}
    deep_id = str(uuid.uuid4())
    items: list[tuple[bytes, str | None]] = [
        (b"this is not json {", None),
        (b'"a JSON string"', None),
        (b"[1, 2]", None),
        (b"{}", None),
        (json.dumps({"properties": 5}).encode(), None),
        (json.dumps({"properties": {"delivery_tag": 1}}).encode(), None),
        (("[" * 5000 + "]" * 5000).encode(), None),
        (b"\xff\xfe\x00 binary", None),
    ]
    for body in ({"a": 1}, "a string", [1, 2], [1, 2, 3, 4], [[{}], {}, "embed"]):
        task_id = str(uuid.uuid4())
        items.append((_item(body, queue, task_id=task_id), task_id))
    deep = [[{"job_id": deep_id, "meta": {"x": DEEP}}], {}, {}]
    items.append((_item(deep, queue, task_id=deep_id), deep_id))
    bad_json_id = str(uuid.uuid4())
    items.append((_item(b"\xff not json", queue, task_id=bad_json_id), bad_json_id))
    items.append((_item([[{}], {}, {}], queue, task="no.such"), None))
    items.append((_item([[empty_id_job], {}, {}], queue, task_id=""), job_id))
    chained_id = str(uuid.uuid4())
    chained = [[{"job_id": chained_id}], {}, {"callbacks": [{"task": "celery.backend_cleanup"}]}]
    items.append((_item(chained, queue, task_id=chained_id), chained_id))
    return items


def test_hostile_messages_become_dead_letters_and_good_jobs_flow(serving_fleet):
    f = serving_fleet
    s = f.settings
    queue = s.queue("interactive")
    queue_key = f"{s.key_prefix}:{queue}"
    bare = Celery("outsider", broker=s.redis_url)  # a bare client: not heimdall's app
    bare.conf.broker_transport_options = {"global_keyprefix": f"{s.key_prefix}:"}
    good, expect_failed = [], {}
    poison = _raw_poison(queue)
    celery_ids = [str(uuid.uuid4()) for _ in range(5)]
    celery_poison = [
        dict(args=[], task_id=celery_ids[0]),
        dict(args=[{"job_id": celery_ids[1]}, 2], task_id=celery_ids[1]),
        dict(args=[], kwargs={"jobs": 1}, task_id=celery_ids[2]),
        dict(args=[{"job_id": celery_ids[3], "meta": {"x": DEEP}}], task_id=celery_ids[3]),
        dict(args=[{"job_id": celery_ids[4]}], task_id=celery_ids[4], serializer="pickle"),
    ]
    pubsub = f.feed.open_subscription()
    goods = _good_jobs(len(poison) + len(celery_poison), seed=900)
    for i, (item, job_id) in enumerate(poison):
        f.redis.lpush(queue_key, item)
        if job_id:
            expect_failed[job_id] = "invalid_job"
        good.append(f.producer.submit(goods[i]).job_id)
    for i, kwargs in enumerate(celery_poison):
        bare.send_task("heimdall.localize", queue=queue, **kwargs)
        expect_failed[kwargs["task_id"]] = "invalid_job"
        good.append(f.producer.submit(goods[len(poison) + i]).job_id)
    # the documented raw message, by plain LPUSH, after all that
    late = _good_jobs(1, seed=901)[0]
    f.redis.lpush(queue_key, raw_message(json.loads(late.to_json()), queue))
    good.append(late.job_id)

    wanted = set(good) | set(expect_failed)
    heard = {}
    for result in f.feed.listen(pubsub, timeout_s=60):
        heard[result.job_id] = result
        if wanted <= set(heard):
            break
    pubsub.close()
    worker = f.nodes[0]
    assert worker.process.poll() is None, "the node stopped"
    assert wanted <= set(heard), f"missing results: {wanted - set(heard)}"
    assert all(heard[j].status == "ok" for j in good), [heard[j].error for j in good]
    for job_id, code in expect_failed.items():
        assert heard[job_id].status == "failed" and heard[job_id].error.code == code
    letters = f.redis.lrange(s.dead_letters_key, 0, -1)
    assert len(letters) == len(poison) + len(celery_poison)
    reasons = {json.loads(x)["reason"] for x in letters}
    assert {"not_json", "not_envelope", "too_deep", "bad_body_shape", "bad_arity",
            "bad_task_id", "unknown_task", "content_type"} <= reasons  # fmt: skip
    assert all(len(json.loads(x)["raw"].encode()) <= 4096 for x in letters)
    assert not f.redis.llen(queue_key), "a message was left on the queue"
    rows = [line.split() for line in fleet_status(s).splitlines()]
    assert [s.dead_letters_key, str(len(letters))] in rows


def test_dead_letters_command_lists_shows_requeues_and_purges(serving_fleet):
    f = serving_fleet
    env = {**f.env, "PATH": f"{sys.prefix}/bin"}
    cli = [sys.executable, "-m", "heimdall.cli", "dead-letters"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)

    listing = run("list")
    assert listing.returncode == 0 and "reason" in listing.stdout and "not_json" in listing.stdout
    newest = json.loads(f.redis.lindex(f.settings.dead_letters_key, 0))
    shown = run("show", newest["letter_id"][:10])
    assert shown.returncode == 0 and newest["reason"] in shown.stdout
    before = f.redis.llen(f.settings.dead_letters_key)
    letters = [json.loads(x) for x in f.redis.lrange(f.settings.dead_letters_key, 0, -1)]
    malformed = next(d for d in letters if d["reason"] == "not_json")
    refused = run("requeue", malformed["letter_id"])  # it would come straight back
    assert refused.returncode == 1 and "would come straight back" in refused.stderr
    assert f.redis.llen(f.settings.dead_letters_key) == before  # the letter stays
    lacking = next(d for d in letters if d["reason"] == "unknown_task")  # the fleet lacked it
    requeued = run("requeue", lacking["letter_id"])
    assert requeued.returncode == 0, requeued.stderr
    # this fleet still has no such task: one letter out, one back in
    deadline = time.monotonic() + 30
    while f.redis.llen(f.settings.dead_letters_key) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(f.redis.lindex(f.settings.dead_letters_key, 0))["reason"] == "unknown_task"
    assert run("requeue", "nosuchid").returncode == 1
    purged = run("purge")
    assert purged.returncode == 0 and f"purged {before}" in purged.stdout
    assert f.redis.llen(f.settings.dead_letters_key) == 0
