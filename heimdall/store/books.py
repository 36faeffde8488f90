"""A process's books of jobs in Redis: job claims, blobs, publication and the result cache over
one client (a child's rides out a Redis restart; a node's main process gives up quickly)."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from heimdall.config import Settings, get_settings
from heimdall.schemas.job import IQJob
from heimdall.store.blobs import BlobPayloads
from heimdall.store.cache import ResultCache
from heimdall.store.claims import JobClaims
from heimdall.store.publication import Publication

# A Redis restart (seconds) is ridden out: up to 40 retries, 50 ms doubling to 1 s apart.
RECONNECT_RETRIES = 40
# A child reads ~560 kB of blobs per standard job: in 256 kB reads rather than redis-py's
# default 64 kB, receiving them costs half the CPU (Python parser 1.3 → 0.7 ms per job,
# hiredis 0.30 → 0.25 ms, measured).
BLOB_READ_BYTES = 256 * 1024
MAIN_PROCESS_TIMEOUT_S = 2.0


def store_client(url: str, ride_out_restarts: bool = True) -> redis.Redis:
    """A child's client retries through a Redis restart instead of failing the job at once;
    a worker's main process (``ride_out_restarts=False``) must not block its event loop, so
    it gives up after ``MAIN_PROCESS_TIMEOUT_S``."""
    if not ride_out_restarts:
        return redis.Redis.from_url(
            url, socket_timeout=MAIN_PROCESS_TIMEOUT_S,
            socket_connect_timeout=MAIN_PROCESS_TIMEOUT_S,
        )  # fmt: skip
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RECONNECT_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_read_size=BLOB_READ_BYTES,
    )


class JobBooks:
    """Everything a worker process reads or writes in Redis for a job, apart from the
    broker's queues: ``claims``, ``publication``, ``cache`` and each job's ``payloads``."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.claims = JobClaims(client, settings)
        self.cache = ResultCache(client, settings)
        self.publication = Publication(client, settings, self.cache)

    def payloads(self, job: IQJob) -> BlobPayloads:
        """The job's IQ blobs, read when the Localizer asks for them."""
        return BlobPayloads(self.redis, job)


_books: dict[bool, JobBooks] = {}


def process_books(ride_out_restarts: bool = True) -> JobBooks:
    """This process's books (connected lazily: after the fork, in a child)."""
    if ride_out_restarts not in _books:
        settings = get_settings()
        _books[ride_out_restarts] = JobBooks(
            store_client(settings.redis_url, ride_out_restarts), settings
        )
    return _books[ride_out_restarts]


def main_process_books() -> JobBooks:
    """A worker node's main process's books: quick to give up, never blocks its event loop."""
    return process_books(ride_out_restarts=False)
