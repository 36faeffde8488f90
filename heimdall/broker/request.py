"""``JobRequest``: the worker main process's side of one delivery of a ``heimdall.localize``
message (one job, whose id is the task id) or a ``heimdall.localize_pack`` message (its jobs).

Celery runs these hooks in the main process when the child running the job is gone:
``on_failure`` with ``WorkerLostError`` (the child died: its claim is released so the
requeued job runs again at once, not when the claim expires), and ``on_timeout`` at the hard
limit and ``_announce_revoked`` for an expired or revoked message (Celery acks the message and
stores nothing: each job gets its ``failed`` result here, as nothing else would publish one;
jobs of a pack that already have one keep it).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from heimdall.broker.results import CeleryResultRecord
from heimdall.config.celery import PACK_TASK_NAME
from heimdall.schemas.errors import ErrorCode
from heimdall.schemas.job import job_id_of
from heimdall.schemas.result import Result, worker_id
from heimdall.store import main_process_books, tagged

log = logging.getLogger(__name__)


class JobRequest(Request):
    """Celery's ``Request`` (the task's ``Request`` option) with the hooks above; the private
    ``_announce_revoked`` is listed in ``heimdall.broker.internals``."""

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit) and self.worker_pid:
            self._release_claim()
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def _announce_revoked(self, reason, terminated, signum, expired):
        # Celery acks a revoked or expired message (a past `expires` header, `celery revoke`,
        # revoke(terminate=True)) and stores nothing for an ignore_result task: the job would
        # end without a result. It gets its failed one here, before the ack.
        if expired:
            self._publish_failure(ErrorCode.TIMEOUT, "the message expired before a worker ran it")
        else:
            how = "revoked and terminated" if terminated else "revoked"
            self._publish_failure(ErrorCode.INTERNAL, f"{how} by an operator; not run")
        return super()._announce_revoked(reason, terminated, signum, expired)

    def on_timeout(self, soft, timeout):
        if not soft:
            self._publish_failure(
                ErrorCode.TIMEOUT,
                f"job exceeded the {timeout:g} s hard time limit; its child was killed",
            )
        return super().on_timeout(soft, timeout)

    def jobs(self) -> list[tuple[str, Any]]:
        """``(job_id, job)`` of each job this message carries, as sent."""
        if self.name == PACK_TASK_NAME:
            jobs = self.args[0] if self.args and isinstance(self.args[0], list) else []
            return [(job_id_of(job), job) for job in jobs]
        return [(self.id, self.args[0] if self.args else None)]

    def _release_claim(self) -> None:
        holder = worker_id(self.worker_pid)
        for job_id, _ in self.jobs():
            try:
                if main_process_books().claims.release(job_id, holder):
                    log.warning("job %s: child %s was lost; claim released", job_id, holder)
            except redis.RedisError as exc:  # the claim then expires with the hard time limit
                log.warning("job %s: could not release the claim of lost child: %s", job_id, exc)

    def _publish_failure(self, code: ErrorCode, message: str) -> None:
        worker = worker_id(self.worker_pid)
        record = CeleryResultRecord(self.task.backend)
        for job_id, job in self.jobs():
            result = tagged(Result.failed(job_id, code, message, worker=worker), job)
            try:
                main_process_books().publication.publish_if_new(record, result)
            except redis.RedisError as exc:
                log.error("job %s: could not publish its %s result: %s", job_id, code, exc)
