"""Worker-side Redis bookkeeping of a job: claim and attempts, blobs in, publication out."""

from __future__ import annotations

from enum import IntEnum

import redis

from heimdall.config import Settings
from heimdall.schemas.job import IQJob


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


class JobLedger:
    """Everything a worker reads or writes in Redis for a job, apart from Celery's own keys."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self._begin_script = client.register_script(BEGIN_LUA)
        self._finish_script = client.register_script(FINISH_LUA)

    def fetch_payloads(self, job: IQJob) -> dict[int, bytes]:
        """IQ blobs of the ``iq_ref`` captures, in one round trip; missing ones are left out."""
        refs = [(i, r.iq_ref) for i, r in enumerate(job.receivers) if r.iq_ref is not None]
        if not refs:
            return {}
        blobs = self.redis.mget([key for _, key in refs])
        return {i: blob for (i, _), blob in zip(refs, blobs, strict=True) if blob is not None}

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

    def _own_blobs(self, job: IQJob | None, job_id: str) -> list[str]:
        """Blob keys of the job written under our naming (never a foreign producer's keys)."""
        if job is None:
            return []
        own = self.settings.blob_key(job_id, 0)[:-1]
        return [r.iq_ref for r in job.receivers if r.iq_ref and r.iq_ref.startswith(own)]
