"""Worker-side Redis bookkeeping of a job: claim and attempts, blobs in, publication out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from enum import IntEnum
from typing import Any

import redis
from celery import states
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from heimdall.config import Settings
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result

PREFETCH_BYTES = 16 * 2**20  # a job with less IQ than this fetches all blobs in one MGET
# A Redis restart (seconds) is ridden out: up to 40 retries, 50 ms doubling to 1 s apart.
RECONNECT_RETRIES = 40


class Claim(IntEnum):
    DONE = -1  # result already published: nothing to do
    BUSY = 0  # another worker holds the job
    CLAIMED = 1  # this worker computes it


# KEYS: published marker, claim, attempts. ARGV: claim TTL (ms), holder, attempts TTL (s).
BEGIN_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return {0, 0} end
local attempts = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {1, attempts}
"""

# KEYS: published marker, stream, then keys to delete. ARGV: marker TTL (s), channel,
# stream MAXLEN, job_id, status, result JSON.
FINISH_LUA = """
local published = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
             'job_id', ARGV[4], 'status', ARGV[5], 'result', ARGV[6])
  redis.call('PUBLISH', ARGV[2], ARGV[6])
  published = 1
end
if #KEYS > 2 then
  redis.call('DEL', unpack(KEYS, 3))
end
return published
"""


# KEYS: claim, attempts. ARGV: holder, 1 to also take back the attempt. Deletes the claim
# only while that holder still has it.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DECR', KEYS[2]) end
return 1
"""


def ledger_client(url: str, ride_out_restarts: bool = True) -> redis.Redis:
    """A child's client retries through a Redis restart instead of failing the job at once;
    a worker's main process (``ride_out_restarts=False``) must not block its event loop, so
    it gives up after 2 s."""
    if not ride_out_restarts:
        return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RECONNECT_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


class BlobPayloads(Mapping[int, bytes]):
    """IQ blobs of a job's ``iq_ref`` captures, by receiver index, each handed out once.

    Nothing is fetched until the Localizer asks (after its checks, e.g. the per-job sample cap).
    Then small jobs get all their blobs in one MGET; a job with more than ``PREFETCH_BYTES`` of
    IQ fetches each blob when asked for it and forgets it once handed out, so a child never
    holds all of a large job's IQ bytes at once (DESIGN §8.14).
    """

    def __init__(self, client: redis.Redis, job: IQJob) -> None:
        self.redis = client
        self.refs = {i: r.iq_ref for i, r in enumerate(job.receivers) if r.iq_ref is not None}
        self.fetch_s = 0.0  # time spent in Redis so far
        expected = sum(job.receivers[i].expected_bytes for i in self.refs)
        self._prefetch = expected <= PREFETCH_BYTES
        self._fetched: dict[int, bytes | None] = {}

    def __getitem__(self, index: int) -> bytes:
        started = time.perf_counter()
        if self._prefetch and self.refs:
            self._prefetch = False
            self._fetched = dict(
                zip(self.refs, self.redis.mget(list(self.refs.values())), strict=True)
            )
        if index in self._fetched:
            blob = self._fetched.pop(index)
        elif index in self.refs:
            blob = self.redis.get(self.refs[index])
        else:
            blob = None
        self.fetch_s += time.perf_counter() - started
        if blob is None:
            raise KeyError(index)
        return blob

    def __iter__(self) -> Iterator[int]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)


class JobLedger:
    """Everything a worker reads or writes in Redis for a job, apart from Celery's own keys."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self._begin_script = client.register_script(BEGIN_LUA)
        self._finish_script = client.register_script(FINISH_LUA)
        self._release_script = client.register_script(RELEASE_LUA)

    def payloads(self, job: IQJob) -> BlobPayloads:
        """The job's IQ blobs (missing ones raise ``KeyError`` when asked for)."""
        return BlobPayloads(self.redis, job)

    def begin(self, job_id: str, holder: str) -> tuple[Claim, int]:
        """Try to take the job for computation, in one round trip.

        Returns ``(DONE, 0)`` when its result was already published, ``(BUSY, 0)`` while
        another worker holds it, else ``(CLAIMED, attempts)`` with the number of times the
        job has now been taken (this one included). The claim expires with the hard time
        limit, so a job whose worker died is taken again after that.
        """
        s = self.settings
        keys = [
            s.job_key(job_id, "published"),
            s.job_key(job_id, "claim"),
            s.job_key(job_id, "attempts"),
        ]
        args = [int(s.hard_time_limit_s * 1000), holder, s.result_ttl_s]
        state, attempts = self._begin_script(keys=keys, args=args)
        return Claim(int(state)), int(attempts)

    def finish(self, job_id: str, status: str, result_json: str, job: IQJob | None) -> bool:
        """Publish the stored result (XADD + PUBLISH, once per job id) and drop the job's
        claim and blobs, atomically in one round trip. False if it was already published."""
        s = self.settings
        keys = [
            s.job_key(job_id, "published"),
            s.results_stream,
            s.job_key(job_id, "claim"),
            *self._own_blobs(job, job_id),
        ]
        args = [s.result_ttl_s, s.results_channel, s.stream_maxlen, job_id, status, result_json]
        return bool(self._finish_script(keys=keys, args=args))

    def release(self, job_id: str, holder: str, take_back_attempt: bool = False) -> bool:
        """Drop the job's claim if ``holder`` still holds it: its child was lost (the
        redelivered job is then taken at once, not when the claim expires), or it gives the
        job back (``take_back_attempt``: that delivery does not count as an attempt)."""
        keys = [self.settings.job_key(job_id, "claim"), self.settings.job_key(job_id, "attempts")]
        return bool(self._release_script(keys=keys, args=[holder, int(take_back_attempt)]))

    def publish(self, backend: Any, result: Result, job: IQJob | None = None) -> dict:
        """Store ``result`` in the Celery backend, then publish it (stream + pub/sub, once per
        job id) and drop the claim and blobs. Stored first, so whoever hears of a result
        can fetch it. Returns the stored body (the result serialized once)."""
        body_json = result.to_json()
        body = json.loads(body_json)
        backend.store_result(result.job_id, body, states.SUCCESS)
        self.finish(result.job_id, result.status, body_json, job)
        return body

    def publish_if_new(self, backend: Any, result: Result, job: IQJob | None = None) -> bool:
        """:meth:`publish` unless the job already has a published result (used by a worker's
        main process, which must never overwrite what a child published)."""
        if self.redis.exists(self.settings.job_key(result.job_id, "published")):
            return False
        self.publish(backend, result, job)
        return True

    @staticmethod
    def stored_result(backend: Any, job_id: str) -> Result | None:
        """A result an earlier delivery stored in the backend (it may not have published it)."""
        meta = backend.get_task_meta(job_id)
        body = meta.get("result") if meta.get("status") == states.SUCCESS else None
        return Result.model_validate(body) if isinstance(body, dict) else None

    def _own_blobs(self, job: IQJob | None, job_id: str) -> list[str]:
        """Blob keys of the job written under our naming (never a foreign producer's keys)."""
        if job is None:
            return []
        own = self.settings.blob_key(job_id, 0)[:-1]
        return [r.iq_ref for r in job.receivers if r.iq_ref and r.iq_ref.startswith(own)]
