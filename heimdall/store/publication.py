"""A job's publication: its result stored where Celery's result backend keeps it, appended to
the durable stream, sent on pub/sub — once per job id — and counted in its batch.

Everything is written in one round trip (a pipeline of Lua scripts), so whoever hears of a
result can fetch it, and a result is stored at most once and published at most once, however
often its job is delivered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

import redis

from heimdall.config import Settings
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result
from heimdall.store.cache import ResultCache
from heimdall.store.scripts import evalsha, pipelined


class ResultRecord(Protocol):
    """Where and how the result backend keeps a job's result (Celery's Redis backend:
    ``heimdall.broker.results.CeleryResultRecord``)."""

    def key(self, job_id: str) -> str:
        """The backend's key of the job's result."""

    def encode(self, job_id: str, body: dict) -> bytes | str:
        """The stored value of a successful task returning ``body``."""

    def ttl_s(self) -> int:
        """The stored result's time to live, seconds (0: none)."""

    def stored(self, job_id: str) -> dict | None:
        """The result body stored for ``job_id`` by a successful task, if any."""


# KEYS: backend result key, published marker, stream, then keys to delete. ARGV: result key
# TTL (s, 0 = none), backend value, marker TTL (s), channel, stream MAXLEN, job_id, status,
# result JSON. Stores the result as the backend would (and notifies its waiters) unless one is
# stored already — only successes are ever stored —, then publishes it once per job id
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


class Publication:
    """Store, publish and count results; keep ``ok`` ones in the result cache."""

    def __init__(self, client: redis.Redis, settings: Settings, cache: ResultCache) -> None:
        self.redis = client
        self.settings = settings
        self.cache = cache
        self._finish_script = client.register_script(FINISH_LUA)
        self._batch_script = client.register_script(BATCH_LUA)

    def publish(
        self,
        record: ResultRecord,
        result: Result,
        job: IQJob | None = None,
        cache_key: str | None = None,
    ) -> dict:
        """:meth:`publish_many` of one result."""
        return self.publish_many(record, [(result, job, cache_key)])[0]

    def publish_many(
        self, record: ResultRecord, answers: list[tuple[Result, IQJob | None, str | None]]
    ) -> list[dict]:
        """For each ``(result, job, cache key)``, in one round trip: store the result in the
        backend (unless one is stored), then publish it (stream + pub/sub, once per job id),
        drop the job's claim and blobs, count it in its batch, and keep an ``ok`` result in
        the result cache under its key, if it has one. Returns the result dicts."""
        calls, bodies = [], []
        for result, job, cache_key in answers:
            body_json = result.to_json()
            body = json.loads(body_json)
            finish = self._finish_call(record, result, body, body_json, job)
            calls.append(partial(evalsha, self._finish_script, *finish))
            if result.batch_id:
                calls.append(partial(evalsha, self._batch_script, *self._batch_call(result)))
            if cache_key is not None:
                calls.append(partial(self.cache.put, cache_key, result, body_json))  # (pipe)
            bodies.append(body)

        def add(pipe: Any) -> None:
            for call in calls:
                call(pipe)

        pipelined(self.redis, [self._finish_script, self._batch_script], add)
        return bodies

    def _finish_call(
        self, record: ResultRecord, result: Result, body: dict, body_json: str, job: IQJob | None
    ) -> tuple[list, list]:
        s, job_id = self.settings, result.job_id
        keys = [record.key(job_id), s.job_key(job_id, "published"), s.results_stream,
                s.job_key(job_id, "claim"), *self._own_blobs(job, job_id)]  # fmt: skip
        args = [record.ttl_s(), record.encode(job_id, body), s.result_ttl_s, s.results_channel,
                s.stream_maxlen, job_id, result.status, body_json]  # fmt: skip
        return keys, args

    def publish_if_new(self, record: ResultRecord, result: Result, job: Any = None) -> bool:
        """:meth:`publish` unless the job already has a published result (used by a worker's
        main process, which must never overwrite what a child published)."""
        if self.redis.exists(self.settings.job_key(result.job_id, "published")):
            return False
        self.publish(record, result, job if isinstance(job, IQJob) else None)
        return True

    @staticmethod
    def stored_result(record: ResultRecord, job_id: str) -> Result | None:
        """A result an earlier delivery stored in the backend (it may not have published it)."""
        body = record.stored(job_id)
        return Result.model_validate(body) if isinstance(body, dict) else None

    def count_done_in_batch(self, record: ResultRecord, job_id: str, job: Any) -> None:
        """A job whose result was published before (e.g. resubmitted in a new batch) still
        counts in the batch it now came with, by its stored result."""
        batch_id, _ = _tags(job)
        if batch_id and (stored := self.stored_result(record, job_id)) is not None:
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

    def _own_blobs(self, job: IQJob | None, job_id: str) -> list[str]:
        """Blob keys of the job written under our naming (never a foreign producer's keys)."""
        if job is None:
            return []
        own = self.settings.blob_key(job_id, 0)[:-1]
        return [r.iq_ref for r in job.receivers if r.iq_ref and r.iq_ref.startswith(own)]
