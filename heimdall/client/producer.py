"""Producer: write IQ blobs (claim-check), enqueue ``heimdall.localize`` with task id = job id."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from heimdall.config import Settings, get_settings
from heimdall.config.celery import TASK_NAME, celery_app
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result


@dataclass
class JobHandle:
    """A submitted job; ``result()`` waits for its ``heimdall.result/1`` in the backend."""

    job_id: str
    queue: str
    submitted_s: float  # time.time() when enqueued
    app: Celery

    def result(self, timeout_s: float = 60.0) -> Result:
        """Block until the result is stored (raises ``TimeoutError`` after ``timeout_s``)."""
        async_result = self.app.AsyncResult(self.job_id)
        try:
            body = async_result.get(timeout=timeout_s, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeout as exc:
            raise TimeoutError(f"no result for job {self.job_id} after {timeout_s} s") from exc
        return Result.model_validate(body)

    def ready(self) -> bool:
        return self.app.AsyncResult(self.job_id).ready()


class Producer:
    """Submits jobs to the fleet: blobs in one Redis pipeline, then one Celery message per job."""

    def __init__(
        self,
        settings: Settings | None = None,
        app: Celery | None = None,
        redis_client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.app = app or celery_app(self.settings, "heimdall-producer")
        self.redis = redis_client or redis.Redis.from_url(self.settings.redis_url)

    def submit(
        self, job: IQJob, payloads: Mapping[int, bytes] | None = None, inline: bool = False
    ) -> JobHandle:
        """Enqueue one job; see :meth:`submit_many`."""
        return self.submit_many([job], [payloads or {}], inline=inline)[0]

    def submit_many(
        self,
        jobs: Iterable[IQJob],
        payloads: Iterable[Mapping[int, bytes]] | None = None,
        inline: bool = False,
    ) -> list[JobHandle]:
        """Enqueue jobs in order.

        Each receiver's IQ goes to a blob ``{prefix}:iq:{job_id}:{index}`` (TTL
        ``blob_ttl_s``), written for all jobs in one pipeline, and the message carries only
        its key. ``payloads[k][i]`` gives raw bytes for receiver ``i`` of job ``k``; inline
        ``iq_b64`` captures are moved to blobs too unless ``inline`` is set (small jobs, or
        tests of the inline path). Receivers already holding an ``iq_ref`` are sent as is.
        """
        jobs = list(jobs)
        served = self._served_models()
        extra = list(payloads) if payloads is not None else [{} for _ in jobs]
        messages = []
        pipe = self.redis.pipeline(transaction=False)
        for job, job_payloads in zip(jobs, extra, strict=True):
            messages.append(self._claim_check(job, job_payloads, inline, pipe))
        pipe.execute()
        handles = []
        with self.app.producer_or_acquire() as producer:
            for job, message in zip(jobs, messages, strict=True):
                # A version no worker serves goes to the default queue, where it fails with
                # unknown_model instead of waiting forever in a queue nobody reads.
                model = job.model if job.model in served else "default"
                queue = self.settings.queue(job.priority, model)
                self.app.send_task(
                    TASK_NAME,
                    args=[message],
                    task_id=job.job_id,
                    queue=queue,
                    producer=producer,
                )
                handles.append(JobHandle(job.job_id, queue, time.time(), self.app))
        return handles

    def _served_models(self) -> set[str]:
        """Versions some worker node announced within the last three announce intervals."""
        since = time.time() - 3 * self.settings.advertise_interval_s
        members = self.redis.zrangebyscore(self.settings.served_models_key, since, "+inf")
        return {m.decode() for m in members} | {"default"}

    def _claim_check(self, job: IQJob, payloads: Mapping[int, bytes], inline: bool, pipe) -> dict:
        now = datetime.now(UTC)
        receivers = []
        ttl_s = self.settings.blob_ttl_s
        for i, capture in enumerate(job.receivers):
            data = payloads.get(i)
            if data is None and capture.iq_b64 is not None and not inline:
                data = capture.inline_bytes()
            if data is not None:
                key = self.settings.blob_key(job.job_id, i)
                pipe.set(key, data, ex=ttl_s)
                capture = capture.model_copy(update={"iq_ref": key, "iq_b64": None})
            receivers.append(capture)
        # submitted_at is when the fleet got the job: queue time is measured from it
        sent = job.model_copy(update={"receivers": receivers, "submitted_at": now})
        return sent.model_dump(mode="json", by_alias=True)
