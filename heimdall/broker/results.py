"""Celery's Redis result backend as the publication's :class:`~heimdall.store.publication.
ResultRecord`: a job's result is stored under Celery's key, in Celery's format, so
``AsyncResult(job_id).get()`` and Flower read it, while our script writes it in the same round
trip as the stream and pub/sub (and never overwrites a stored success)."""

from __future__ import annotations

from typing import Any

from celery import states


class CeleryResultRecord:
    """Where and how ``backend`` (Celery's Redis backend) keeps a task's result."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def key(self, job_id: str) -> str:
        return self.backend.get_key_for_task(job_id).decode()

    def encode(self, job_id: str, body: dict) -> bytes | str:
        # Celery's own meta of a successful task (status, result, date_done, children…)
        meta = self.backend._get_result_meta(
            result=body, state=states.SUCCESS, traceback=None, request=None
        )
        meta["task_id"] = job_id
        return self.backend.encode(meta)

    def ttl_s(self) -> int:
        return int(self.backend.expires or 0)

    def stored(self, job_id: str) -> dict | None:
        meta = self.backend.get_task_meta(job_id)
        body = meta.get("result") if meta.get("status") == states.SUCCESS else None
        return body if isinstance(body, dict) else None
