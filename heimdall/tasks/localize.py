"""The ``heimdall.localize`` task: claim → fetch blobs → Localizer → store, publish, release.

Delivery is at-least-once (acks late, requeue on lost worker), so the task makes computation
once per job id: a published result short-circuits, a claim keeps two children off one job
(the other looks again later, without a cap, rather than dropping it), and an attempt counter
turns a job that keeps killing its child into a ``failed`` result. A child lost between
storing and publishing a result leaves the stored result to the next delivery, which
publishes it without computing again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError

from heimdall.broker.results import CeleryResultRecord
from heimdall.config import get_settings
from heimdall.inference.failures import failed_result
from heimdall.inference.localizer import Localizer
from heimdall.inference.payloads import PayloadsUnavailable, interrupt_with
from heimdall.inference.registry import ModelRegistry, install_registry, process_registry
from heimdall.schemas.errors import ErrorCode, InvalidJob, JobTimeout
from heimdall.schemas.job import IQJob, job_id_of
from heimdall.schemas.result import Result, Timings, worker_id
from heimdall.store import BlobPayloads, JobBooks, JobClaim, process_books, tagged
from heimdall.store.cache import cache_key, capture_bytes
from heimdall.tasks.app import TASK_NAME, app
from heimdall.tasks.shadow import score_shadow
from heimdall.telemetry import metrics

log = logging.getLogger(__name__)

# The soft time limit ends a delivery, not a job: it stops the Localizer like a Redis outage.
interrupt_with(SoftTimeLimitExceeded)
# What reaches the task from computing, never a job's failed result: Redis gone (the job is
# given back to its queue), a time limit (every unfinished job fails with `timeout`).
INTERRUPTIONS = (SoftTimeLimitExceeded, PayloadsUnavailable, redis.RedisError)
REDIS_GONE = (redis.RedisError, OperationalError, PayloadsUnavailable)


def registry() -> ModelRegistry:
    """The models this process serves; loaded by the worker hook, or here when run outside one."""
    current = process_registry()
    if current is None:
        s = get_settings()
        current = ModelRegistry.for_settings(s, worker_id())
        install_registry(current)
    return current


# ignore_result: the task stores its result itself, before publishing it, exactly once.
# resultrepr_maxsize: Celery logs each return value; a result's GeoJSON is kilobytes.
# max_retries=None: a busy job is retried without a cap (self.retry(max_retries=None) alone
# means "the task's default", 3). JobRequest: the main process's side of a delivery.
@app.task(
    name=TASK_NAME,
    bind=True,
    ignore_result=True,
    resultrepr_maxsize=160,
    max_retries=None,
    Request="heimdall.broker.request:JobRequest",
)
def localize(self, job: Any) -> dict | None:
    """Localize one ``heimdall.iqjob/1`` and publish its ``heimdall.result/1``; returns the
    job id and status (the result itself travels by Redis, not back through the pool)."""
    try:
        return _deliver(self, job)
    except REDIS_GONE as exc:
        # Redis stayed away longer than the client's retries: give the job back to the queue
        # (or, with the broker gone too, leave it unacked for redelivery); never ack it
        # without a published result.
        log.error("job %s: Redis unavailable (%s); job requeued", self.request.id, exc)
        give_back(self.request.id)
        raise Reject(str(exc), requeue=True) from None


def give_back(job_id: str) -> None:
    with contextlib.suppress(redis.RedisError):  # else the claim expires with the hard limit
        process_books().claims.release(job_id, worker_id(), take_back_attempt=True)


def _deliver(self, job: Any) -> dict | None:
    started_s = time.perf_counter()
    job_id = self.request.id
    books, record = process_books(), CeleryResultRecord(self.backend)
    claim, attempts = books.claims.begin(job_id, worker_id())
    if claim is JobClaim.DONE:
        books.publication.count_done_in_batch(record, job_id, job)
        raise Ignore()  # already published: a duplicate submission or a late redelivery
    if claim is JobClaim.BUSY:
        # Another child holds it: running it now, or lost while running it (its main process
        # then releases the claim, or it expires with the hard time limit). Never dropped.
        raise self.retry(countdown=get_settings().busy_retry_s, max_retries=None)
    if attempts > 1 and (stored := books.publication.stored_result(record, job_id)) is not None:
        # An earlier delivery stored this result and was lost before publishing it.
        return published(books.publication.publish(record, stored, parsed_or_none(job)))
    parsed, cached_as = None, None
    if attempts > get_settings().max_attempts:
        result = lost_too_often(job_id, attempts)
    else:
        answer = compute_many([(job_id, job)], books)[0]
        parsed, result, cached_as = answer.job, answer.result, answer.cache_key
    result.worker = worker_id()
    add_bookkeeping([result], started_s)
    return published(books.publication.publish(record, tagged(result, job), parsed, cached_as))


def add_bookkeeping(results: list[Result], started_s: float) -> None:
    """Each result's ``total``: what the Localizer measured (its stages) plus an equal share of
    the delivery's own work since ``started_s`` (claims, blobs for the cache key, cache); a
    result made without the Localizer gets the delivery's time."""
    elapsed_ms = (time.perf_counter() - started_s) * 1000.0
    computed_ms = sum(r.timings_ms.total or 0.0 for r in results)
    share_ms = max(0.0, elapsed_ms - computed_ms) / max(1, len(results))
    for result in results:
        result.timings_ms.total = (result.timings_ms.total or 0.0) + share_ms


def published(body: dict) -> dict:
    """Count a published result in the child's metrics; the task's short return value."""
    if metrics.current() is not None:
        metrics.current().observe_result(body)
    return {"job_id": body.get("job_id"), "status": body.get("status")}


@dataclass
class Answer:
    """A job's result, its parsed job (None if it did not parse), and the result cache key
    of a computed result (published results are stored under it if ``ok``)."""

    job: IQJob | None
    result: Result
    cache_key: str | None = None


def compute_many(jobs: list[tuple[str, Any]], books: JobBooks) -> list[Answer]:
    """An :class:`Answer` for each ``(job_id, job)``: from the result cache, else by the job's
    model — jobs for one model together, one ONNX call per shape (and shadows, when asked).
    Anything a job got wrong fails that job alone; Redis errors propagate."""
    out: list[Answer | None] = [None] * len(jobs)
    pending: dict[int, _Pending] = {}
    try:
        for k, (job_id, job) in enumerate(jobs):
            try:
                pending[k] = _admitted(job, job_id, books)
            except INTERRUPTIONS:
                raise
            except Exception as exc:
                out[k] = Answer(None, failed_result(job_id, exc, Timings()))
        # each small job's blobs in one MGET (one per job: hiredis parses 16 jobs' replies in
        # one pipeline at twice the CPU), then all cache entries in one round trip
        for k, p in pending.items():
            try:
                _keyed(p)  # fetches the blobs: a Redis error must reach the task
            except INTERRUPTIONS:
                raise
            except Exception as exc:
                out[k] = Answer(p.job, failed_result(p.job.job_id, exc, p.timings))
        keyed = [k for k, p in pending.items() if out[k] is None and p.cache_key is not None]
        hits = books.cache.get_many([(pending[k].cache_key, pending[k].job.job_id) for k in keyed])
        for k, hit in zip(keyed, hits, strict=True):
            if hit is not None:
                hit.timings_ms = pending[k].timings.model_copy()
                out[k] = Answer(pending[k].job, hit)
        by_model: dict[int, list[int]] = {}
        for k, p in pending.items():
            if out[k] is None:
                by_model.setdefault(id(p.localizer), []).append(k)
        for ks in by_model.values():
            localizer = pending[ks[0]].localizer
            items = [(pending[k].job, pending[k].source, pending[k].timings) for k in ks]
            results = localizer.localize_many(items)
            for k, result in zip(ks, results, strict=True):
                _score_shadows(pending[k], result, books)
                if pending[k].cache_key is not None:
                    result.cache = "miss"  # looked up, not found; stored only if ok
                out[k] = Answer(pending[k].job, result, pending[k].cache_key)
    except SoftTimeLimitExceeded:
        limit = get_settings().soft_time_limit_s
        for k, (job_id, _) in enumerate(jobs):
            if out[k] is None:
                timings = pending[k].timings if k in pending else Timings()
                timeout = JobTimeout(f"job exceeded the {limit:g} s soft time limit")
                job = pending[k].job if k in pending else None
                out[k] = Answer(job, failed_result(job_id, timeout, timings))
    return out


@dataclass
class _Pending:
    """A job admitted for computation, and where its IQ and result cache entry are."""

    job: IQJob
    timings: Timings
    payloads: BlobPayloads
    localizer: Localizer
    wants_iq: bool  # its IQ is fetched whole, before computing, for its cache key
    iq: dict[int, bytes | None] | None = None  # a small job's blobs and inline captures
    cache_key: str | None = None

    @property
    def source(self) -> Any:
        return self.iq if self.iq is not None else self.payloads


def _admitted(job: Any, job_id: str, books: JobBooks) -> _Pending:
    """Check and parse the job and find what computing it needs (nothing fetched yet)."""
    if job_id_of(job) != job_id:
        raise InvalidJob(f"job_id {job_id_of(job)!r} must equal the Celery task id {job_id!r}")
    parsed = IQJob.model_validate(job)
    timings = Timings()
    timings.queue = max(0.0, (datetime.now(UTC) - parsed.submitted_at).total_seconds() * 1e3)
    payloads = books.payloads(parsed)
    localizer = registry().for_model(parsed.model)
    settings = get_settings()
    # the cap is checked (in localize) before any IQ is fetched: a job over it skips the cache
    wanted = (settings.cache_enabled or parsed.ab) and (
        parsed.total_samples <= localizer.max_job_samples
    )
    return _Pending(parsed, timings, payloads, localizer, bool(wanted) and payloads.small)


def _keyed(pending: _Pending) -> None:
    """The job's IQ bytes (fetched by now) and, with the cache on, its cache key."""
    if not pending.wants_iq:
        return
    pending.iq = capture_bytes(pending.job, pending.payloads.small_job_bytes())
    pending.timings.fetch = pending.payloads.fetch_s * 1000.0  # the Localizer adds its reads
    if pending.iq is not None and get_settings().cache_enabled:
        pending.cache_key = cache_key(pending.job, pending.iq, pending.localizer.version)


def _score_shadows(pending: _Pending, result: Result, books: JobBooks) -> None:
    """Score a shadow job's result against the other versions served here (a failure is
    logged; the job keeps its result)."""
    job = pending.job
    if pending.iq is None or job.ab is None or not job.ab.shadow or result.status != "ok":
        return
    try:
        score_shadow(registry(), job, pending.iq, result, books.redis, get_settings())
    except (redis.RedisError, SoftTimeLimitExceeded):
        raise
    except Exception:
        log.exception("job %s: shadow scoring failed; its result stands", job.job_id)


def parsed_or_none(job: Any) -> IQJob | None:
    try:
        return IQJob.model_validate(job)
    except Exception:
        return None


def lost_too_often(job_id: str, attempts: int) -> Result:
    cap = get_settings().max_attempts
    log.error("job %s taken %d times (cap %d); failing it", job_id, attempts, cap)
    return Result.failed(
        job_id,
        ErrorCode.INTERNAL,
        f"taken by a worker {attempts} times, more than the cap of {cap}: "
        "the worker running it was lost each time",
    )
