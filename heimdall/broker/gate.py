"""The message gate: no message can stop a worker node (DESIGN §8.12).

Everything a worker's main process takes off a queue passes here before Celery builds a
request from it or sends it to the pool (``heimdall.broker.consumer.GuardedConsumer`` asks
:func:`refusal_of`):

* a refusal envelope from ``heimdall.broker.envelope`` (the item was not a kombu message),
* a ``heimdall.localize`` message whose task id, headers or body are not what the task takes
  (not JSON, not ``[args, kwargs, embed]``, wrong arity, nested too deep, too large, an empty
  task id, callbacks a foreign producer must not chain, dates Celery cannot parse), or a
  ``heimdall.localize_pack`` whose argument is not a list of 1…64 jobs with distinct UUID
  ``job_id`` values,
* a message for a task this fleet does not have, or that Celery itself cannot handle,

each becomes a dead letter (``{prefix}:dead-letters``) and is acked; every job id that can be
recovered (the task id, the body's ``job_id``, a refused pack's UUID job ids) gets its
``failed`` result, code ``invalid_job``, so its producer is not left waiting.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from heimdall.broker.envelope import (
    DETAIL_HEADER,
    MAX_ENVELOPE_DEPTH,
    RAW_HEADER,
    REFUSED_HEADER,
)
from heimdall.config.celery import PACK_MAX_JOBS, PACK_TASK_NAME, TASK_NAME
from heimdall.schemas.job import nesting_depth

MAX_BODY_DEPTH = 24  # [args, kwargs, embed] → job → receivers → capture, plus meta's 16
MAX_TASK_ID_CHARS = 200
EMBED_KEYS = ("callbacks", "errbacks", "chain", "chord", "group")
DATE_HEADERS = ("eta", "expires")
STRING_HEADERS = ("root_id", "parent_id", "group", "origin", "argsrepr", "kwargsrepr", "shadow")


@dataclass
class Refusal:
    """Why a message is not handed to the pool; ``job_id`` if one could be recovered."""

    reason: str
    detail: str
    job_id: str | None = None
    pack_job_ids: list[str] = field(default_factory=list)  # a refused pack's jobs

    @property
    def job_ids(self) -> list[str]:
        return [self.job_id, *self.pack_job_ids] if self.job_id else self.pack_job_ids


def refusal_of(message: Any, max_body_bytes: int) -> Refusal | None:
    """What is wrong with a queue message for this fleet, or None if Celery may take it."""
    headers = message.headers
    if isinstance(headers, dict) and REFUSED_HEADER in headers:
        return Refusal(str(headers[REFUSED_HEADER]), str(headers.get(DETAIL_HEADER, "")))
    if not isinstance(headers, dict) or headers.get("task") not in (TASK_NAME, PACK_TASK_NAME):
        return None  # not ours by its headers: Celery decides, the handler's guard catches
    if headers["task"] == PACK_TASK_NAME:
        return _pack_refusal(message, max_body_bytes)
    task_id = headers.get("id")
    body_refusal = _body_refusal(message, max_body_bytes)
    if not isinstance(task_id, str) or not task_id.strip():
        job_id = body_refusal.job_id if body_refusal else _job_id_in(message.payload)
        detail = f"task id {task_id!r} is empty; it must be the job_id"
        return Refusal("bad_task_id", detail, job_id)
    if len(task_id) > MAX_TASK_ID_CHARS:
        return Refusal("bad_task_id", f"task id of {len(task_id)} characters")
    problem = _header_problem(headers)
    if problem:
        return Refusal("bad_headers", problem, task_id)
    if body_refusal:
        body_refusal.job_id = task_id
        return body_refusal
    return None


def _pack_refusal(message: Any, max_body_bytes: int) -> Refusal | None:
    """What is wrong with a pack: its envelope as for one job, then its list of jobs."""
    headers = message.headers
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > MAX_TASK_ID_CHARS:
        refusal = Refusal("bad_task_id", f"pack task id {task_id!r:.80} must be a short string")
    else:
        problem = _header_problem(headers)
        refusal = Refusal("bad_headers", problem) if problem else None
    refusal = refusal or _body_refusal(message, max_body_bytes, PACK_TASK_NAME)
    jobs = _pack_jobs(message)
    if refusal is None:
        refusal = _pack_problem(jobs)
    if refusal is not None:
        ids = [_uuid_or_none(j.get("job_id")) for j in jobs if isinstance(j, dict)]
        refusal.job_id = None
        refusal.pack_job_ids = list(dict.fromkeys(i for i in ids if i))
    return refusal


def _pack_jobs(message: Any) -> list:
    try:
        body = message.decode()
        jobs = body[0][0] if body[0] else body[1]["jobs"]
    except Exception:
        return []
    return jobs if isinstance(jobs, list) else []


def _pack_problem(jobs: list) -> Refusal | None:
    if not 1 <= len(jobs) <= PACK_MAX_JOBS:
        return Refusal("bad_pack", f"a pack holds 1 to {PACK_MAX_JOBS} jobs, got {len(jobs)}")
    ids = [_uuid_or_none(j.get("job_id")) if isinstance(j, dict) else None for j in jobs]
    if None in ids:
        return Refusal("bad_pack", "every job of a pack must be an object with a UUID job_id")
    if len(set(ids)) != len(ids):
        return Refusal("bad_pack", "a pack holds each job id once")
    return None


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _header_problem(headers: dict[str, Any]) -> str | None:
    if nesting_depth(headers, MAX_ENVELOPE_DEPTH) > 4:
        return "headers nest deeper than 4 levels"
    for name in DATE_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return f"header {name} must be null or an ISO 8601 time, got {value!r:.80}"
    for name in STRING_HEADERS:
        if headers.get(name) is not None and not isinstance(headers.get(name), str):
            return f"header {name} must be null or a string"
    retries = headers.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        return f"header retries must be a non-negative integer, got {retries!r:.80}"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, list)
        and len(limits) == 2
        and all(v is None or (isinstance(v, int | float) and v > 0) for v in limits)
    ):
        return f"header timelimit must be [soft, hard] seconds or nulls, got {limits!r:.80}"
    return None


def _body_refusal(message: Any, max_body_bytes: int, task: str = TASK_NAME) -> Refusal | None:
    size = len(message.body or b"")
    if size > max_body_bytes:
        return Refusal(
            "too_large",
            f"message body of {size} bytes exceeds {max_body_bytes} (HEIMDALL_MAX_MESSAGE_BYTES); "
            "send IQ by iq_ref blobs",
        )
    if message.content_type != "application/json":
        return Refusal("content_type", f"content type {message.content_type!r}; only JSON")
    try:
        body = message.decode()
    except RecursionError:
        return Refusal("too_deep", "body nests too deep to parse")
    except Exception as exc:
        return Refusal("not_json", f"body does not decode: {type(exc).__name__}: {exc}"[:300])
    if nesting_depth(body, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        return Refusal("too_deep", f"body nests deeper than {MAX_BODY_DEPTH} levels")
    job_id = _job_id_in(body)
    if not (isinstance(body, list) and len(body) == 3):
        return Refusal(
            "bad_body_shape", f"body must be [args, kwargs, embed], got {_shape(body)}", job_id
        )
    args, kwargs, embed = body
    if not (isinstance(args, list) and isinstance(kwargs, dict)):
        return Refusal("bad_body_shape", "args must be a list and kwargs an object", job_id)
    argument = "jobs" if task == PACK_TASK_NAME else "job"
    if len(args) + len(kwargs) != 1 or (kwargs and argument not in kwargs):
        return Refusal(
            "bad_arity",
            f"{task} takes one argument; got {len(args)} positional "
            f"and {sorted(kwargs)[:5]} keyword",
            job_id,
        )
    if embed is not None and not isinstance(embed, dict):
        return Refusal("bad_body_shape", "embed (third element) must be an object", job_id)
    chained = [k for k in EMBED_KEYS if (embed or {}).get(k)]
    if chained:
        return Refusal("bad_body_shape", f"jobs cannot chain other tasks ({chained})", job_id)
    return None


def _job_id_in(body: Any) -> str | None:
    """The ``job_id`` of the job in a body, if it is a UUID (else nothing is recoverable)."""
    try:
        job = body[0][0] if body[0] else body[1]["job"]
        return str(uuid.UUID(job["job_id"]))
    except Exception:
        return None


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a JSON {type(value).__name__}"


def as_envelope(message: Any) -> bytes:
    """The message as a kombu envelope (what a Redis queue holds), for the dead letter."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    if REFUSED_HEADER in headers:
        return str(headers.get(RAW_HEADER, "")).encode()
    envelope = {
        "body": base64.b64encode(message.body or b"").decode(),
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": headers,
        "properties": {**message.properties, "body_encoding": "base64"},
    }
    return json.dumps(envelope, default=str).encode()
