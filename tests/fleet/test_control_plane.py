"""Control commands leave nothing behind: a client's replies are not message-claimed (so no
sweeper pushes them back into lists nobody reads, warning of a "lost worker"), and a reply list
that nobody reads expires."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from heimdall.broker.transport import CLAIMED_HASH, REPLY_LIST_TTL_MS

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]


def _keys_without_expiry(f) -> list[str]:
    """Keys of the fleet's prefix that would live forever, apart from its job queues."""
    permanent = {f"{f.settings.key_prefix}:{q}" for q in f.settings.worker_queues()}
    out = []
    for key in f.redis.scan_iter(match=f"{f.settings.key_prefix}:*", count=1000):
        name = key.decode()
        if name in permanent or f.redis.pttl(key) >= 0:
            continue
        out.append(name)
    return out


def test_status_calls_claim_nothing_and_leave_no_reply_list_forever(serving_fleet):
    f = serving_fleet
    env = {**os.environ, **f.env}
    before = set(_keys_without_expiry(f))
    for _ in range(10):
        done = subprocess.run(
            [sys.executable, "-m", "heimdall.cli", "status"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "worker node" in done.stdout
    # nothing stays message-claimed: a sweeper has nothing to push back, no "lost worker"
    assert f.redis.hlen(f"{f.settings.key_prefix}:{CLAIMED_HASH}") == 0
    leaked = sorted(set(_keys_without_expiry(f)) - before)  # any key, reply lists or not
    assert leaked == [], leaked
    for key in f.redis.scan_iter(match=f"{f.settings.key_prefix}:*.reply.*"):
        assert 0 < f.redis.pttl(key) <= REPLY_LIST_TTL_MS


def test_a_reply_nobody_reads_expires(serving_fleet):
    """A late reply (its client declared its reply queue, then gave up) lands in a list that
    expires; the answering process never saw the client's declaration."""
    from kombu import Connection, Exchange, Producer, Queue

    from heimdall.config.celery import celery_app

    f = serving_fleet
    app = celery_app(f.settings, "test-late-reply")
    name = f"{uuid.uuid4()}.reply.celery.pidbox"
    exchange = Exchange("reply.celery.pidbox", "direct")
    options = {"transport": app.conf.broker_transport,
               "transport_options": app.conf.broker_transport_options}  # fmt: skip
    try:
        with Connection(app.conf.broker_url, **options) as client:  # the client that left
            queue = Queue(name, exchange, routing_key=name, expires=10.0)
            queue.bind(client.default_channel).declare()
        with Connection(app.conf.broker_url, **options) as node:  # the node answering late
            Producer(node.default_channel).publish(
                {"late": True}, exchange=exchange, routing_key=name, serializer="json"
            )
    finally:
        app.close()
    keys = list(f.redis.scan_iter(match=f"{f.settings.key_prefix}:{name}*"))
    assert keys, "the reply was not written"
    assert all(0 < f.redis.pttl(k) <= REPLY_LIST_TTL_MS for k in keys)


def test_a_message_claimed_by_a_process_that_died_is_pushed_back_and_runs(serving_fleet):
    """The other side: a message claim left by a process that died between pop and record
    (written here as it would have left it) is pushed back by a node's sweep, with the
    warning, and its job runs."""
    from heimdall.broker.envelope import job_message
    from heimdall.broker.transport import CLAIM_GRACE_S, CLAIMED_INDEX
    from heimdall.sim import ScenarioGenerator, SimConfig

    f = serving_fleet
    job = ScenarioGenerator(SimConfig(network="reference"), seed=77).next().to_job(
        "ci16_le", job_id=str(uuid.uuid4())
    )
    queue = f.settings.queue("interactive")
    item = job_message(json.loads(job.to_json()), queue)
    claim_id = uuid.uuid4().hex
    prefix = f.settings.key_prefix
    f.redis.hset(f"{prefix}:{CLAIMED_HASH}", claim_id, f"{prefix}:{queue}\0{item}")
    f.redis.zadd(f"{prefix}:{CLAIMED_INDEX}", {claim_id: time.time() - 6 * CLAIM_GRACE_S})
    entries = f.stream_until([job.job_id], timeout_s=60)
    assert [r.status for _, r in entries if r.job_id == job.job_id] == ["ok"]
    log = f.nodes[0].log_path.read_text()
    assert "pushed back" in log
