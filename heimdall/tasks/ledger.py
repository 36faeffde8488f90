"""Worker-side Redis bookkeeping of a job: blobs in, delivery count, claim, publication out."""

from __future__ import annotations

import redis

from heimdall.config import Settings
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result


class JobLedger:
    """Everything a worker reads or writes in Redis for a job, apart from Celery's own keys."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings

    def fetch_payloads(self, job: IQJob) -> dict[int, bytes]:
        """IQ blobs of the ``iq_ref`` captures, in one round trip; missing ones are left out."""
        refs = [(i, r.iq_ref) for i, r in enumerate(job.receivers) if r.iq_ref is not None]
        if not refs:
            return {}
        blobs = self.redis.mget([key for _, key in refs])
        return {i: blob for (i, _), blob in zip(refs, blobs, strict=True) if blob is not None}

    def count_delivery(self, job_id: str) -> int:
        """How many times this job has been delivered to a worker, this one included."""
        key = self.settings.job_key(job_id, "deliveries")
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.settings.result_ttl_s)
        return int(pipe.execute()[0])

    def claim(self, job_id: str) -> bool:
        """Take the job for computation; False while another worker holds it.

        The claim expires with the hard time limit, so a job whose worker died is taken
        again when Celery redelivers it.
        """
        key = self.settings.job_key(job_id, "claim")
        ttl_ms = int(self.settings.hard_time_limit_s * 1000)
        return bool(self.redis.set(key, "1", nx=True, px=ttl_ms))

    def record_computation(self, job_id: str) -> None:
        """Count computations per job id (audited by tests and ``heimdall bench``)."""
        key = self.settings.job_key(job_id, "computed")
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.settings.result_ttl_s)
        pipe.execute()

    def computations(self, job_id: str) -> int:
        return int(self.redis.get(self.settings.job_key(job_id, "computed")) or 0)

    def publish(self, result: Result) -> bool:
        """PUBLISH and XADD the result, once per job id; False if it was already published."""
        s = self.settings
        if not self.redis.set(
            s.job_key(result.job_id, "published"), "1", nx=True, ex=s.result_ttl_s
        ):
            return False
        body = result.to_json()
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(
            s.results_stream,
            {"job_id": result.job_id, "status": result.status, "result": body},
            maxlen=s.stream_maxlen,
            approximate=True,
        )
        pipe.publish(s.results_channel, body)
        pipe.execute()
        return True

    def release(self, job: IQJob | None, job_id: str) -> None:
        """Drop the job's blobs and claim once its result is stored."""
        keys = [self.settings.job_key(job_id, "claim")]
        if job is not None:  # only blobs this job's producer wrote under our naming
            own = self.settings.blob_key(job_id, 0)[:-1]
            keys += [r.iq_ref for r in job.receivers if r.iq_ref and r.iq_ref.startswith(own)]
        self.redis.delete(*keys)
