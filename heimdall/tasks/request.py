"""``JobRequest``: the worker main process's side of one ``heimdall.localize`` delivery.

Celery runs these hooks in the main process when the child running the job is gone:
``on_failure`` with ``WorkerLostError`` (the child died: its claim is released so the
requeued job runs again at once, not when the claim expires), ``on_timeout`` at the hard
limit and ``on_failure`` with ``Terminated`` after a revoke (the child was killed and Celery
acks the message: the job gets its ``failed`` result here, as nothing else would publish one).
"""

from __future__ import annotations

import logging
import socket

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import Terminated, WorkerLostError
from celery.worker.request import Request

from heimdall.config import get_settings
from heimdall.schemas.errors import ErrorCode
from heimdall.schemas.result import Result
from heimdall.tasks.ledger import JobLedger, ledger_client

log = logging.getLogger(__name__)
_main_ledger: JobLedger | None = None


def main_process_ledger() -> JobLedger:
    """The main process's Redis bookkeeping: quick to give up, never blocks its event loop."""
    global _main_ledger
    if _main_ledger is None:
        settings = get_settings()
        _main_ledger = JobLedger(ledger_client(settings.redis_url, False), settings)
    return _main_ledger


class JobRequest(Request):
    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit) and self.worker_pid:
            self._release_claim()
        elif isinstance(exc, Terminated) and not self._already_cancelled:
            # revoke(terminate=True): Celery acks the message as revoked.
            self._publish_failure(ErrorCode.INTERNAL, "terminated by a revoke; not run again")
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def on_timeout(self, soft, timeout):
        if not soft:
            self._publish_failure(
                ErrorCode.TIMEOUT,
                f"job exceeded the {timeout:g} s hard time limit; its child was killed",
            )
        return super().on_timeout(soft, timeout)

    def _release_claim(self) -> None:
        holder = f"{socket.gethostname()}:{self.worker_pid}"
        try:
            if main_process_ledger().release(self.id, holder):
                log.warning("job %s: child %s was lost; claim released", self.id, holder)
        except redis.RedisError as exc:  # the claim then expires with the hard time limit
            log.warning("job %s: could not release the claim of lost child: %s", self.id, exc)

    def _publish_failure(self, code: ErrorCode, message: str) -> None:
        worker = f"{socket.gethostname()}:{self.worker_pid}"
        result = Result.failed(self.id, code, message, worker=worker)
        try:
            main_process_ledger().publish_if_new(self.task.backend, result)
        except redis.RedisError as exc:
            log.error("job %s: could not publish its %s result: %s", self.id, code, exc)
