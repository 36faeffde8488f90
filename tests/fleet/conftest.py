"""Real services: a private redis-server and real ``heimdall worker`` (Celery prefork) nodes.

Each test module gets its own key prefix, so queues, blobs, results and streams never mix.
With ``HEIMDALL_TEST_BROKER_URL`` (e.g. ``amqp://guest:guest@127.0.0.1:5672//``) the fleets
use that broker for their queues (Redis still holds blobs, results, the stream and pub/sub);
tests of the Redis broker's own behaviour are marked ``redis_broker`` and skipped then.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import pytest

from heimdall.config import Settings
from heimdall.harness.fleet import LocalFleet
from heimdall.harness.redis_server import PrivateRedis

BROKER_URL = os.environ.get("HEIMDALL_TEST_BROKER_URL")  # None: the Redis of each fleet


def pytest_collection_modifyitems(config, items):
    if BROKER_URL and not BROKER_URL.startswith(("redis://", "rediss://")):
        scheme = BROKER_URL.split(":")[0]
        skip = pytest.mark.skip(reason=f"tests the Redis broker; the broker is {scheme}")
        for item in items:
            if "redis_broker" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server():
    with PrivateRedis() as server:
        yield server


class Fleet(LocalFleet):
    """The module's fleet on the session's private Redis, under a key prefix of its own."""

    def __init__(self, redis_url: str, log_dir) -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        settings = Settings(redis_url=redis_url, key_prefix=prefix, broker_url=BROKER_URL)
        super().__init__(settings, "given", log_dir)
        self.start()

    def computations(self, job_id: str) -> int:
        return int(self.redis.get(self.settings.job_key(job_id, "attempts")) or 0)

    def stream_job_ids(self) -> list[str]:
        return [r.job_id for _, r in self.feed.read_stream("0-0")]

    def stream_until(self, job_ids, after_id: str = "0-0", timeout_s: float = 30.0) -> list:
        """Stream entries after ``after_id`` once all ``job_ids`` are among them (a worker
        stores a result in the backend before it appends it to the stream)."""
        deadline = time.monotonic() + timeout_s
        while True:
            entries = list(self.feed.read_stream(after_id))
            if set(job_ids) <= {r.job_id for _, r in entries} or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def drop_broker_queues(self) -> None:
        """On a shared RabbitMQ, delete this fleet's queues (on Redis they die with the server)."""
        if not BROKER_URL or BROKER_URL.startswith(("redis://", "rediss://")):
            return
        from kombu import Connection

        names = self.settings.worker_queues(["v1", "v1b", "v2", "v3"])
        with Connection(BROKER_URL) as connection:
            for name in names:
                with contextlib.suppress(Exception):  # never declared by this fleet
                    connection.channel().queue_delete(name)


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    f = Fleet(redis_server.url, tmp_path_factory.mktemp("fleet"))
    yield f
    f.close()
    f.drop_broker_queues()


@pytest.fixture(scope="module")
def serving_fleet(fleet):
    """The module's fleet with one worker node of 2 prefork children running."""
    fleet.start_node(concurrency=2)
    return fleet
