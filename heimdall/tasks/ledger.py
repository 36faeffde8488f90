"""Worker-side Redis bookkeeping of a job: claim and attempts, blobs in, publication out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from enum import IntEnum
from functools import partial
from typing import Any

import redis
from celery import states
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from heimdall.config import Settings
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result
from heimdall.tasks.cache import ResultCache

PREFETCH_BYTES = 16 * 2**20  # a job with less IQ than this fetches all blobs in one MGET
# A Redis restart (seconds) is ridden out: up to 40 retries, 50 ms doubling to 1 s apart.
RECONNECT_RETRIES = 40
# A child reads ~560 kB of blobs per standard job: in 256 kB reads rather than redis-py's
# default 64 kB, receiving them costs half the CPU (Python parser 1.3 → 0.7 ms per job,
# hiredis 0.30 → 0.25 ms, measured).
BLOB_READ_BYTES = 256 * 1024


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

# KEYS: Celery result key, published marker, stream, then keys to delete. ARGV: result key
# TTL (s, 0 = none), Celery meta JSON, marker TTL (s), channel, stream MAXLEN, job_id, status,
# result JSON. Stores the result as Celery's backend would (and notifies its waiters) unless
# one is stored already — only successes are ever stored —, then publishes it once per job id
# (stream + pub/sub) and drops the job's claim and blobs.
FINISH_LUA = """
local stored
if ARGV[1] ~= '0' then
  stored = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1])
else
  stored = redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
if stored then redis.call('PUBLISH', KEYS[1], ARGV[2]) end
local published = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
             'job_id', ARGV[6], 'status', ARGV[7], 'result', ARGV[8])
  redis.call('PUBLISH', ARGV[4], ARGV[8])
  published = 1
end
if #KEYS > 3 then
  redis.call('DEL', unpack(KEYS, 4))
end
return published
"""

# KEYS: batch hash, its set of counted job ids, stream. ARGV: job_id, status, error code (''),
# TTL (s), batch id, stream MAXLEN. Counts a job in its batch once (the set says whether it
# was); the job that ends the batch appends the batch's summary to the stream (kind = batch).
BATCH_LUA = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[4])
local ended = redis.call('HINCRBY', KEYS[1], 'ended', 1)
redis.call('HINCRBY', KEYS[1], 'status:' .. ARGV[2], 1)
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[1], 'code:' .. ARGV[3], 1) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ended ~= tonumber(redis.call('HGET', KEYS[1], 'total') or '-1') then return 1 end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'finished_at', now[1] .. '.' .. string.format('%06d', now[2]))
local flat = redis.call('HGETALL', KEYS[1])
local summary = {batch_id = ARGV[5], statuses = {}, codes = {}}
for i = 1, #flat, 2 do
  local k, v = flat[i], flat[i + 1]
  if string.sub(k, 1, 7) == 'status:' then summary.statuses[string.sub(k, 8)] = tonumber(v)
  elseif string.sub(k, 1, 5) == 'code:' then summary.codes[string.sub(k, 6)] = tonumber(v)
  elseif k == 'total' or k == 'ended' then summary[k] = tonumber(v)
  else summary[k] = v end
end
local body = cjson.encode(summary)
redis.call('HSET', KEYS[1], 'summary', body)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
           'kind', 'batch', 'batch_id', ARGV[5], 'summary', body)
return 2
"""


# KEYS: claim, attempts. ARGV: holder, 1 to also take back the attempt. Deletes the claim
# only while that holder still has it.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DECR', KEYS[2]) end
return 1
"""


def _evalsha(sha: str, keys: list, args: list, pipe: Any) -> None:
    pipe.evalsha(sha, len(keys), *keys, *args)


def tagged(result: Result, job: Any) -> Result:
    """``result`` with its job's batch id and A/B arm, read from the job as sent (a parsed
    ``IQJob`` or the raw message argument: an invalid job of a batch still counts in it)."""
    batch_id, arm = _tags(job)
    result.batch_id = batch_id or result.batch_id
    result.ab_arm = arm or result.ab_arm
    return result


def _tags(job: Any) -> tuple[str | None, str | None]:
    if isinstance(job, IQJob):
        return job.batch_id, job.ab.arm if job.ab else None
    if not isinstance(job, Mapping):
        return None, None
    batch_id, ab = job.get("batch_id"), job.get("ab")
    arm = ab.get("arm") if isinstance(ab, Mapping) else None
    ok = [isinstance(v, str) and 0 < len(v) <= 64 for v in (batch_id, arm)]
    return batch_id if ok[0] else None, arm if ok[1] else None


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
        socket_read_size=BLOB_READ_BYTES,
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
        self._small = expected <= PREFETCH_BYTES
        self._prefetch = self._small
        self._fetched: dict[int, bytes | None] = {}

    def __getitem__(self, index: int) -> bytes:
        started = time.perf_counter()
        self._fetch_small_job()
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

    @property
    def small(self) -> bool:
        """Fetched whole in one MGET (else blob by blob, each forgotten once handed out)."""
        return self._small

    def small_job_bytes(self) -> dict[int, bytes | None] | None:
        """All blobs of a small job, fetched now in one MGET and still handed out later; None
        for a job fetched blob by blob."""
        if not self._small:
            return None
        started = time.perf_counter()
        self._fetch_small_job()
        self.fetch_s += time.perf_counter() - started
        return dict(self._fetched)

    def _fetch_small_job(self) -> None:
        if self._prefetch and self.refs:
            self._prefetch = False
            self._fetched = dict(
                zip(self.refs, self.redis.mget(list(self.refs.values())), strict=True)
            )

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
        self._batch_script = client.register_script(BATCH_LUA)
        self._scripts = (self._begin_script, self._finish_script, self._batch_script)
        self.cache = ResultCache(client, settings)

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

    def begin_many(self, job_ids: list[str], holder: str) -> list[tuple[Claim, int]]:
        """:meth:`begin` for each job, in one round trip."""
        s = self.settings

        def add(pipe: Any) -> None:
            for job_id in job_ids:
                keys = [s.job_key(job_id, k) for k in ("published", "claim", "attempts")]
                args = [int(s.hard_time_limit_s * 1000), holder, s.result_ttl_s]
                pipe.evalsha(self._begin_script.sha, len(keys), *keys, *args)

        return [(Claim(int(state)), int(attempts)) for state, attempts in self._pipelined(add)]

    def _pipelined(self, add: Any) -> list:
        """The replies to the commands ``add(pipe)`` queues, in one round trip. Scripts go by
        EVALSHA: redis-py's scripts in a pipeline first ask SCRIPT EXISTS, one more round trip
        each time; when a restarted Redis has lost them, they are loaded and it runs again
        (a NOSCRIPT reply means no script of the pipeline ran)."""
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            add(pipe)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                for script in self._scripts:
                    self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    def count_done_in_batch(self, backend: Any, job_id: str, job: Any) -> None:
        """A job whose result was published before (e.g. resubmitted in a new batch) still
        counts in the batch it now came with, by its stored result."""
        batch_id, _ = _tags(job)
        if batch_id and (stored := self.stored_result(backend, job_id)) is not None:
            stored.batch_id = batch_id
            self.count_in_batch(stored)

    def count_in_batch(self, result: Result) -> None:
        """Count the job's result in its batch (once per batch and job id, however often it
        is delivered or resubmitted); the last one appends the batch summary to the stream."""
        if result.batch_id:
            keys, args = self._batch_call(result)
            self._batch_script(keys=keys, args=args)

    def _batch_call(self, result: Result) -> tuple[list, list]:
        s = self.settings
        key = s.batch_key(result.batch_id)
        code = result.error.code.value if result.error else ""
        keys = [key, f"{key}:jobs", s.results_stream]
        args = [result.job_id, result.status, code, s.batch_ttl_s, result.batch_id,
                s.stream_maxlen]  # fmt: skip
        return keys, args

    def release(self, job_id: str, holder: str, take_back_attempt: bool = False) -> bool:
        """Drop the job's claim if ``holder`` still holds it: its child was lost (the
        redelivered job is then taken at once, not when the claim expires), or it gives the
        job back (``take_back_attempt``: that delivery does not count as an attempt)."""
        keys = [self.settings.job_key(job_id, "claim"), self.settings.job_key(job_id, "attempts")]
        return bool(self._release_script(keys=keys, args=[holder, int(take_back_attempt)]))

    def publish(
        self,
        backend: Any,
        result: Result,
        job: IQJob | None = None,
        cache_key: str | None = None,
    ) -> dict:
        """:meth:`publish_many` of one result."""
        return self.publish_many(backend, [(result, job, cache_key)])[0]

    def publish_many(
        self, backend: Any, answers: list[tuple[Result, IQJob | None, str | None]]
    ) -> list[dict]:
        """For each ``(result, job, cache key)``, in one round trip: store the result in the
        Celery backend (as Celery's Redis backend does, unless one is stored), then publish it
        (stream + pub/sub, once per job id), drop the job's claim and blobs, count it in its
        batch, and keep an ``ok`` result in the result cache under its key, if it has one.
        Stored first, so whoever hears of a result can fetch it. Returns the stored dicts."""
        s = self.settings
        calls, bodies = [], []
        for result, job, cache_key in answers:
            body_json = result.to_json()
            body = json.loads(body_json)
            meta = backend._get_result_meta(
                result=body, state=states.SUCCESS, traceback=None, request=None
            )
            meta["task_id"] = result.job_id
            keys = [
                backend.get_key_for_task(result.job_id),
                s.job_key(result.job_id, "published"),
                s.results_stream,
                s.job_key(result.job_id, "claim"),
                *self._own_blobs(job, result.job_id),
            ]
            args = [
                int(backend.expires or 0),
                backend.encode(meta),
                s.result_ttl_s,
                s.results_channel,
                s.stream_maxlen,
                result.job_id,
                result.status,
                body_json,
            ]
            calls.append(partial(_evalsha, self._finish_script.sha, keys, args))
            if result.batch_id:
                calls.append(partial(_evalsha, self._batch_script.sha, *self._batch_call(result)))
            if cache_key is not None:
                calls.append(partial(self.cache.put, cache_key, result, body_json))  # (pipe)
            bodies.append(body)

        def add(pipe: Any) -> None:
            for call in calls:
                call(pipe)

        self._pipelined(add)
        return bodies

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
