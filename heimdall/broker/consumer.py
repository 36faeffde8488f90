"""The worker node's consumer: the gate in front of Celery's task handler, refused messages
kept as dead letters with their jobs answered, and Flower's task events sent in batches."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery.worker.consumer import Consumer

from heimdall.broker.deadletters import DeadLetter, DeadLetterBox
from heimdall.broker.envelope import RAW_BYTES_HEADER
from heimdall.broker.gate import Refusal, as_envelope, refusal_of
from heimdall.broker.results import CeleryResultRecord
from heimdall.config import get_settings
from heimdall.schemas.errors import ErrorCode
from heimdall.schemas.result import Result
from heimdall.store import main_process_books
from heimdall.telemetry import metrics

log = logging.getLogger(__name__)

# Task events (for Flower) are published at most this often, several per message: Celery
# flushes its event buffer on the next loop turn, one PUBLISH round trip per turn — with a job
# arriving every few ms that was most of the main process's time.
EVENT_FLUSH_S = 0.02


class GuardedConsumer(Consumer):
    """Celery's consumer (``worker_consumer``) with the gate in front of its task-message handler,
    and task events sent in batches every ``EVENT_FLUSH_S``.

    Wraps ``create_task_handler`` (every message is checked by
    :func:`heimdall.broker.gate.refusal_of` first; what Celery itself cannot handle is refused
    too), answers Celery's ``on_unknown_*``/``on_invalid_task``/``on_decode_error`` hooks with a
    dead letter instead of a log line, and replaces ``on_send_event_buffered`` (Celery flushes
    its event buffer on every loop turn) with a flush every ``EVENT_FLUSH_S``; the private
    ``_flush_events`` is listed in ``heimdall.broker.internals``."""

    _event_flush_due = False

    def on_send_event_buffered(self) -> None:
        if self.hub and not self._event_flush_due:
            self._event_flush_due = True
            self.hub.call_later(EVENT_FLUSH_S, self._flush_buffered_events)

    def _flush_buffered_events(self) -> None:
        self._event_flush_due = False
        self._flush_events()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):  # events are best effort; the jobs are not
            self._flush_events()
        super().shutdown()

    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)
        max_body_bytes = get_settings().max_message_bytes

        def on_task_received(message: Any) -> None:
            try:
                refusal = refusal_of(message, max_body_bytes)
            except Exception as exc:
                refusal = Refusal("unreadable", f"{type(exc).__name__}: {exc}"[:300])
            if refusal is not None:
                return self.refuse(message, refusal)
            try:
                return handle(message)
            except self.connection_errors:
                raise
            except Exception as exc:
                log.exception("message refused after Celery could not handle it")
                return self.refuse(
                    message, Refusal("unhandled", f"{type(exc).__name__}: {exc}"[:300])
                )

        return on_task_received

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.refuse(message, Refusal("unknown_message", "no task name in headers or body"))

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        name = headers.get("task")
        self.refuse(message, Refusal("unknown_task", f"no task named {name!r:.100} here"))

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.refuse(message, Refusal("invalid_task", f"{type(exc).__name__}: {exc}"[:300]))

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self.refuse(message, Refusal("not_json", f"{type(exc).__name__}: {exc}"[:300]))

    def refuse(self, message: Any, refusal: Refusal) -> None:
        """Dead-letter ``message``, publish its job's failed result if any, ack it."""
        books = main_process_books()
        queue = (message.delivery_info or {}).get("routing_key") or "?"
        raw = as_envelope(message)
        headers = message.headers if isinstance(message.headers, dict) else {}
        letter = DeadLetter.of(refusal.reason, refusal.detail, queue, raw, task_id=refusal.job_id)
        if RAW_BYTES_HEADER in headers:
            letter.raw_bytes = int(headers[RAW_BYTES_HEADER])
        log.error(
            "dead letter %s from %s: %s (%s)",
            letter.letter_id[:12],
            queue,
            refusal.reason,
            refusal.detail[:200],
        )
        # A Redis error propagates: the message stays unacked and comes back with Redis.
        DeadLetterBox(books.redis, books.settings).record(letter)
        if metrics.current() is not None:
            metrics.current().dead_letters.labels(reason=refusal.reason).inc()
        for job_id in refusal.job_ids:
            self._publish_refusal(job_id, refusal)
        if not message.acknowledged:
            message.ack()

    def _publish_refusal(self, job_id: str, refusal: Refusal) -> None:
        result = Result.failed(
            job_id,
            ErrorCode.INVALID_JOB,
            f"message refused ({refusal.reason}): {refusal.detail}",
            worker=self.hostname,
        )
        record = CeleryResultRecord(self.app.backend)
        main_process_books().publication.publish_if_new(record, result)
