"""The ``heimdall.localize`` task: claim → fetch blobs → Localizer → store, publish, release.

Delivery is at-least-once (acks late, requeue on lost worker), so the task makes computation
once per job id: a published result short-circuits, a claim keeps two workers off one job
(the other looks again later rather than dropping it), and an attempt counter turns a job
that keeps killing its worker into a ``failed`` result. A worker lost between storing and
publishing a result is the one case that computes a job twice; it is still published once.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery import states
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from heimdall.config import get_settings
from heimdall.inference.failures import failed_result
from heimdall.inference.localizer import default_worker_name, job_id_of
from heimdall.inference.registry import ModelRegistry, install_registry, process_registry
from heimdall.schemas.errors import ErrorCode, InvalidJob, JobTimeout
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result, Timings
from heimdall.tasks.app import TASK_NAME, app
from heimdall.tasks.ledger import Claim, JobLedger

log = logging.getLogger(__name__)
BUSY_RETRY_S = 2.0
_ledger: JobLedger | None = None


def ledger() -> JobLedger:
    """This process's Redis bookkeeping (connects lazily, after the fork)."""
    global _ledger
    if _ledger is None:
        settings = get_settings()
        _ledger = JobLedger(redis.Redis.from_url(settings.redis_url), settings)
    return _ledger


def registry() -> ModelRegistry:
    """The models this process serves; loaded by the worker hook, or here when run outside one."""
    current = process_registry()
    if current is None:
        s = get_settings()
        current = ModelRegistry(
            s.models_dir, s.default_model, s.serve_models, default_worker_name()
        )
        install_registry(current)
    return current


# ignore_result: the task stores its result itself, before publishing it, exactly once.
# resultrepr_maxsize: Celery logs each return value; a result's GeoJSON is kilobytes.
@app.task(name=TASK_NAME, bind=True, ignore_result=True, resultrepr_maxsize=160)
def localize(self, job: Any) -> dict:
    """Localize one ``heimdall.iqjob/1``; returns its ``heimdall.result/1`` as a dict."""
    started_s = time.perf_counter()
    job_id = self.request.id
    books = ledger()
    claim, attempts = books.begin(job_id, default_worker_name())
    if claim is Claim.DONE:
        raise Ignore()  # already computed: a duplicate submission or a late redelivery
    if claim is Claim.BUSY:
        # Another worker holds it: running it now, or lost while running it (its claim
        # then expires with the hard time limit). Look again later; never drop the job.
        raise self.retry(countdown=BUSY_RETRY_S, max_retries=None)
    parsed: IQJob | None = None
    if attempts > get_settings().max_attempts:
        result = _lost_too_often(job_id, attempts)
    else:
        parsed, result = _compute(job, job_id, books)
    result.worker = default_worker_name()
    result.timings_ms.total = (time.perf_counter() - started_s) * 1000.0
    body_json = result.to_json()  # serialized once: published as is, stored as its dict
    body = json.loads(body_json)
    # Stored before publishing so a subscriber that hears of it can always fetch it.
    self.backend.store_result(job_id, body, states.SUCCESS)
    books.finish(job_id, result.status, body_json, parsed)
    return body


def _compute(job: Any, job_id: str, books: JobLedger) -> tuple[IQJob | None, Result]:
    timings = Timings()
    parsed = None
    try:
        if job_id_of(job) != job_id:
            raise InvalidJob(f"job_id {job_id_of(job)!r} must equal the Celery task id {job_id!r}")
        parsed = IQJob.model_validate(job)
        timings.queue = max(0.0, (datetime.now(UTC) - parsed.submitted_at).total_seconds() * 1e3)
        fetch_s = time.perf_counter()
        payloads = books.fetch_payloads(parsed)
        timings.fetch = (time.perf_counter() - fetch_s) * 1000.0
        localizer = registry().for_model(parsed.model)
        result = localizer.localize(parsed, payloads, timings, reraise=(SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        limit = get_settings().soft_time_limit_s
        result = failed_result(
            job_id, JobTimeout(f"job exceeded the {limit:g} s soft time limit"), timings
        )
    except Exception as exc:
        result = failed_result(job_id, exc, timings)
    return parsed, result


def _lost_too_often(job_id: str, attempts: int) -> Result:
    cap = get_settings().max_attempts
    log.error("job %s taken %d times (cap %d); failing it", job_id, attempts, cap)
    return Result.failed(
        job_id,
        ErrorCode.INTERNAL,
        f"taken by a worker {attempts} times, more than the cap of {cap}: "
        "the worker running it was lost each time",
    )
