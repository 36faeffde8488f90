"""The ``heimdall.localize_pack`` task: several bulk jobs in one message, one ONNX call.

A producer packs small bulk jobs it submits together (``Settings.pack_max_jobs`` per message),
which spares each job the per-message costs (queue round trips, task events, the pool's pipe)
and lets the network run once for all of them. Each job keeps its own id, result and delivery
guarantee: it is claimed, computed once and published exactly as a ``heimdall.localize`` job,
and the message is acked only once every job in it has its published result. A pack whose
child is lost comes back whole: jobs already published are skipped, the rest computed, and the
attempt cap still counts per job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Reject

from heimdall.broker.results import CeleryResultRecord
from heimdall.config import get_settings
from heimdall.schemas.job import job_id_of
from heimdall.schemas.result import worker_id
from heimdall.store import JobBooks, JobClaim, process_books, tagged
from heimdall.store.publication import ResultRecord
from heimdall.tasks.app import PACK_TASK_NAME, TASK_NAME, app
from heimdall.tasks.localize import (
    REDIS_GONE,
    add_bookkeeping,
    compute_many,
    give_back,
    lost_too_often,
    parsed_or_none,
    published,
)

log = logging.getLogger(__name__)


@app.task(
    name=PACK_TASK_NAME,
    bind=True,
    ignore_result=True,
    resultrepr_maxsize=160,
    Request="heimdall.broker.request:JobRequest",
)
def localize_pack(self, jobs: list[Any]) -> dict:
    """Localize each ``heimdall.iqjob/1`` of ``jobs``; returns how many were computed here."""
    claimed: list[str] = []
    try:
        return _deliver(self, jobs, claimed)
    except REDIS_GONE as exc:
        log.error("pack %s: Redis unavailable (%s); pack requeued", self.request.id, exc)
        for job_id in claimed:
            give_back(job_id)
        raise Reject(str(exc), requeue=True) from None


def _deliver(self, jobs: list[Any], claimed: list[str]) -> dict:
    started_s = time.perf_counter()
    books, holder, settings = process_books(), worker_id(), get_settings()
    record = CeleryResultRecord(self.backend)
    ids = [job_id_of(job) for job in jobs]  # the gate let in only unique string job ids
    compute: list[tuple[str, Any]] = []
    for job_id, job, (claim, attempts) in zip(
        ids, jobs, books.claims.begin_many(ids, holder), strict=True
    ):
        if claim is JobClaim.DONE:
            books.publication.count_done_in_batch(record, job_id, job)
            continue
        if claim is JobClaim.BUSY:
            _alone_later(self, job_id, job, settings.busy_retry_s)
            continue
        claimed.append(job_id)  # given back if Redis goes away before it is published
        stored = books.publication.stored_result(record, job_id) if attempts > 1 else None
        if stored is not None:
            _publish(books, record, stored, parsed_or_none(job))
        elif attempts > settings.max_attempts:
            _publish(books, record, tagged(lost_too_often(job_id, attempts), job), None)
        else:
            compute.append((job_id, job))
    answers = compute_many(compute, books)
    add_bookkeeping([answer.result for answer in answers], started_s)
    done = []
    for (_, job), answer in zip(compute, answers, strict=True):
        answer.result.worker = holder
        done.append((tagged(answer.result, job), answer.job, answer.cache_key))
    for body in books.publication.publish_many(record, done):
        published(body)
    return {"pack": len(jobs), "computed": len(compute)}


def _publish(books: JobBooks, record: ResultRecord, result: Any, parsed: Any) -> None:
    published(books.publication.publish(record, result, parsed))


def _alone_later(self, job_id: str, job: Any, countdown_s: float) -> None:
    """Another child holds this job (running it, or lost while running it): it goes back to
    the queue as a job of its own, looked at again after ``countdown_s`` — never dropped."""
    queue = (self.request.delivery_info or {}).get("routing_key") or get_settings().queue("bulk")
    app.send_task(
        TASK_NAME,
        args=[job],
        task_id=job_id,
        queue=queue,
        countdown=countdown_s,
        ignore_result=True,
    )
