"""Producer: write IQ blobs (claim-check), enqueue ``heimdall.localize`` with task id = job id."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from pydantic import ValidationError

from heimdall.broker.blobwriter import blob_writer
from heimdall.client.ab import Split, read_split
from heimdall.config import Settings, get_settings
from heimdall.config.celery import PACK_TASK_NAME, TASK_NAME, celery_app
from heimdall.schemas.job import AbAssignment, IQJob
from heimdall.schemas.result import Result


def serving_nodes(client: redis.Redis, settings: Settings) -> dict[str, list[str]]:
    """Worker nodes heard from within the last three announce intervals, and the versions each
    says it serves now (a node that stopped speaking serves nothing)."""
    since = time.time() - 3 * settings.advertise_interval_s
    nodes: dict[str, list[str]] = {}
    for node, raw in client.hgetall(settings.served_by_key).items():
        try:
            entry = json.loads(raw)
            if float(entry["at"]) >= since:
                nodes[node.decode()] = [str(v) for v in entry["versions"]]
        except (ValueError, KeyError, TypeError):  # a malformed entry serves nothing
            continue
    return nodes


def served_versions(client: redis.Redis, settings: Settings) -> set[str]:
    """Versions some worker node serves now."""
    return {v for versions in serving_nodes(client, settings).values() for v in versions}


def _with_arm(job: IQJob, split: Split, served: set[str]) -> IQJob:
    """A ``default`` job without an arm gets the split's arm among the served versions."""
    if job.model != "default" or job.ab is not None:
        return job
    arm = split.arm(job.job_id, served)
    if arm is None:
        return job
    ab = AbAssignment(arm=arm, shadow=split.shadow(job.job_id))
    return job.model_copy(update={"model": arm, "ab": ab})


def _parsed(item: IQJob | Mapping[str, Any]) -> IQJob | None:
    if isinstance(item, IQJob):
        return item
    try:
        return IQJob.model_validate(item)
    except ValidationError:
        return None


def _raw_message(item: Any, batch_id: str, taken: set[str]) -> dict[str, Any]:
    """An invalid job as it will be sent: itself (a non-mapping becomes the value of ``job``),
    with the batch id and, unless it has a UUID of its own not ``taken``, a fresh job id."""
    message = dict(item) if isinstance(item, Mapping) else {"job": item}
    if not _is_uuid(message.get("job_id")) or message["job_id"] in taken:
        message["job_id"] = str(uuid.uuid4())
    message["batch_id"] = batch_id
    return message


# A pack runs under one job's time limits: only jobs far below them are packed (the standard
# job has 70 000 samples; a pack of 16 such takes ~0.1 s of a child).
PACK_MAX_JOB_SAMPLES = 200_000
SUBMIT_SLICE_PACKS = 1  # submit_many writes blobs and sends messages this many packs at a time


def _packable(job: IQJob, pack_max_jobs: int) -> bool:
    """Bulk jobs small enough to share a message (interactive ones never wait for others)."""
    return (
        pack_max_jobs > 1 and job.priority == "bulk" and job.total_samples <= PACK_MAX_JOB_SAMPLES
    )


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


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
        except CeleryTimeout:
            # Celery's backend keeps a waiting AsyncResult until its result comes; left there,
            # it is collected at interpreter exit, when its cleanup can no longer import.
            self.app.backend.remove_pending_result(async_result)
            raise TimeoutError(f"no result for job {self.job_id} after {timeout_s} s") from None
        return Result.model_validate(body)

    def ready(self) -> bool:
        return self.app.AsyncResult(self.job_id).ready()


@dataclass
class BatchHandle:
    """A submitted batch: its id and one handle per job, in submission order."""

    batch_id: str
    handles: list[JobHandle]
    producer: Producer

    def record(self) -> dict[str, Any] | None:
        return self.producer.batch(self.batch_id)

    def summary(self) -> dict[str, Any] | None:
        """The summary the last job published, or None while jobs are pending."""
        record = self.record() or {}
        return json.loads(record["summary"]) if "summary" in record else None


class Producer:
    """Submits jobs to the fleet: blobs in one Redis pipeline, then one Celery message per job
    (small bulk jobs submitted together: per pack of up to ``pack_max_jobs``)."""

    def __init__(
        self,
        settings: Settings | None = None,
        app: Celery | None = None,
        redis_client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.app = app or celery_app(self.settings, "heimdall-producer")
        self.redis = redis_client or blob_writer(self.settings.redis_url)

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
        A ``default`` job goes to the arm of the A/B split in force (:mod:`heimdall.client.ab`).
        """
        jobs = list(jobs)
        served = self._served_models()
        split = read_split(self.redis, self.settings)
        extra = list(payloads) if payloads is not None else [{} for _ in jobs]
        if len(extra) != len(jobs):
            raise ValueError(f"{len(jobs)} jobs but {len(extra)} payload mappings")
        by_id: dict[str, JobHandle] = {}
        # In slices, blobs then messages: workers start on the first jobs while later ones
        # are still being written.
        step = SUBMIT_SLICE_PACKS * self.settings.pack_max_jobs
        for start in range(0, len(jobs), step):
            outgoing, packs = [], {}
            pipe = self.redis.pipeline(transaction=False)
            for job, job_payloads in zip(
                jobs[start : start + step], extra[start : start + step], strict=True
            ):
                job = _with_arm(job, split, served)
                # A version no worker serves goes to the default queue, where it fails with
                # unknown_model instead of waiting forever in a queue nobody reads.
                model = job.model if job.model in served else "default"
                queue = self.settings.queue(job.priority, model)
                message = self._claim_check(job, job_payloads, inline, pipe)
                if _packable(job, self.settings.pack_max_jobs):
                    packs.setdefault(queue, []).append((job.job_id, message))
                else:
                    outgoing.append((job.job_id, queue, message))
            pipe.execute()
            by_id.update((h.job_id, h) for h in self._send(outgoing, packs))
        return [by_id[job.job_id] for job in jobs]

    def submit_batch(
        self,
        jobs: Iterable[IQJob | Mapping[str, Any]],
        payloads: Iterable[Mapping[int, bytes]] | None = None,
        inline: bool = False,
    ) -> BatchHandle:
        """Enqueue jobs as one batch: each stays independent (its own id, result and delivery
        guarantee), and the job that ends last appends the batch's summary to the results
        stream. A mapping that is not a valid job is sent as it is, with the batch id: the
        fleet answers it with a ``failed`` result (``invalid_job``) that counts in the batch."""
        items = list(jobs)
        extra = list(payloads) if payloads is not None else [{} for _ in items]
        batch_id = str(uuid.uuid4())
        valid, valid_payloads, invalid, seen = [], [], [], set()
        for item, job_payloads in zip(items, extra, strict=True):
            job = _parsed(item)
            if job is None:
                invalid.append(_raw_message(item, batch_id, seen))
            elif job.job_id not in seen:  # the same job id twice is one job (idempotency)
                valid.append(job.model_copy(update={"batch_id": batch_id}))
                valid_payloads.append(job_payloads)
            seen.add(invalid[-1]["job_id"] if job is None else job.job_id)
        key = self.settings.batch_key(batch_id)
        created = datetime.now(UTC).isoformat()
        self.redis.hset(key, mapping={"total": len(seen), "created_at": created})
        self.redis.expire(key, self.settings.batch_ttl_s)
        handles = self.submit_many(valid, valid_payloads, inline=inline)
        queue = self.settings.queue("interactive")
        handles += self._send([(m["job_id"], queue, m) for m in invalid])
        return BatchHandle(batch_id, handles, self)  # one handle per distinct job

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch's record: total, ended, counts by ``status:`` and ``code:``, times, and
        ``summary`` (JSON) once every job ended; None if unknown or expired."""
        record = self.redis.hgetall(self.settings.batch_key(batch_id))
        return {k.decode(): v.decode() for k, v in record.items()} or None

    def batch_ids(self, prefix: str) -> list[str]:
        """Ids of the batches (not expired) whose id starts with ``prefix``, as tables show
        them (8 characters)."""
        head = self.settings.batch_key("")
        escaped = "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix)
        keys = self.redis.scan_iter(match=f"{head}{escaped}*", count=1000)
        found = {key.decode()[len(head):] for key in keys}
        return sorted(i for i in found if ":" not in i)  # not the batches' job-id sets

    def _send(
        self,
        outgoing: list[tuple[str, str, dict]],
        packs: Mapping[str, list[tuple[str, dict]]] | None = None,
    ) -> list[JobHandle]:
        """One message per job of ``outgoing``; the jobs of ``packs`` (by queue) in messages
        of up to ``pack_max_jobs`` (``heimdall.localize_pack``). Handles in that order."""
        handles = []
        size = self.settings.pack_max_jobs
        with self.app.producer_or_acquire() as producer:
            # ignore_result: no SUBSCRIBE per message to a result channel; a handle's result()
            # subscribes when (and if) it is asked, then reads what is stored.
            send = partial(self.app.send_task, producer=producer, ignore_result=True)
            for job_id, queue, message in outgoing:
                send(TASK_NAME, args=[message], task_id=job_id, queue=queue)
                handles.append(JobHandle(job_id, queue, time.time(), self.app))
            for queue, jobs in (packs or {}).items():
                for start in range(0, len(jobs), size):
                    pack = jobs[start : start + size]
                    if len(pack) == 1:
                        send(TASK_NAME, args=[pack[0][1]], task_id=pack[0][0], queue=queue)
                    else:
                        messages = [m for _, m in pack]
                        send(
                            PACK_TASK_NAME, args=[messages], task_id=str(uuid.uuid4()), queue=queue
                        )
                    sent_s = time.time()
                    handles += [JobHandle(job_id, queue, sent_s, self.app) for job_id, _ in pack]
        return handles

    def _served_models(self) -> set[str]:
        return served_versions(self.redis, self.settings) | {"default"}

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
