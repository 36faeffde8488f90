"""Job claims: which worker process computes a job now, and how often it has been taken.

Not to be confused with the broker's *message claims* (``heimdall.broker.transport``), which
keep a queue message safe between the pop and kombu's unacked record. A job claim lives while
a child computes the job; it expires with the hard time limit, so a job whose child died is
taken again after that (or at once, when the node's main process releases it).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import redis

from heimdall.config import Settings
from heimdall.store.scripts import evalsha, pipelined


class JobClaim(IntEnum):
    DONE = -1  # result already published: nothing to do
    BUSY = 0  # another worker process holds the job
    CLAIMED = 1  # this worker process computes it


# KEYS: published marker, claim, attempts. ARGV: claim TTL (ms), holder, attempts TTL (s).
BEGIN_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return {0, 0} end
local attempts = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {1, attempts}
"""

# KEYS: claim, attempts. ARGV: holder, 1 to also take back the attempt. Deletes the claim
# only while that holder still has it.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DECR', KEYS[2]) end
return 1
"""


class JobClaims:
    """Take, count and release job claims; ``holder`` is a :func:`heimdall.config.worker_id`."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self._begin_script = client.register_script(BEGIN_LUA)
        self._release_script = client.register_script(RELEASE_LUA)

    def _begin_call(self, job_id: str, holder: str) -> tuple[list, list]:
        s = self.settings
        keys = [s.job_key(job_id, k) for k in ("published", "claim", "attempts")]
        return keys, [int(s.hard_time_limit_s * 1000), holder, s.result_ttl_s]

    def begin(self, job_id: str, holder: str) -> tuple[JobClaim, int]:
        """Try to take the job for computation, in one round trip.

        Returns ``(DONE, 0)`` when its result was already published, ``(BUSY, 0)`` while
        another worker process holds it, else ``(CLAIMED, attempts)`` with the number of times
        the job has now been taken (this one included)."""
        keys, args = self._begin_call(job_id, holder)
        state, attempts = self._begin_script(keys=keys, args=args)
        return JobClaim(int(state)), int(attempts)

    def begin_many(self, job_ids: list[str], holder: str) -> list[tuple[JobClaim, int]]:
        """:meth:`begin` for each job, in one round trip."""

        def add(pipe: Any) -> None:
            for job_id in job_ids:
                evalsha(self._begin_script, *self._begin_call(job_id, holder), pipe)

        replies = pipelined(self.redis, [self._begin_script], add)
        return [(JobClaim(int(state)), int(attempts)) for state, attempts in replies]

    def release(self, job_id: str, holder: str, take_back_attempt: bool = False) -> bool:
        """Drop the job's claim if ``holder`` still holds it: its child was lost (the
        redelivered job is then taken at once, not when the claim expires), or it gives the
        job back (``take_back_attempt``: that delivery does not count as an attempt)."""
        keys = [self.settings.job_key(job_id, "claim"), self.settings.job_key(job_id, "attempts")]
        return bool(self._release_script(keys=keys, args=[holder, int(take_back_attempt)]))
