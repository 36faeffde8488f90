"""A job's IQ blobs (claim-check), read from Redis as the Localizer asks for them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis

from heimdall.inference.payloads import PayloadsUnavailable
from heimdall.schemas.job import IQJob

PREFETCH_BYTES = 16 * 2**20  # a job with less IQ than this fetches all blobs in one MGET


class BlobPayloads:
    """IQ blobs of a job's ``iq_ref`` captures, by receiver index, each handed out once; the
    Localizer's payload source (``heimdall.inference.payloads.PayloadSource``).

    Nothing is fetched until the Localizer asks (after its checks, e.g. the per-job sample cap).
    Then small jobs get all their blobs in one MGET; a job with more than ``PREFETCH_BYTES`` of
    IQ fetches each blob when asked for it and forgets it once handed out, so a child never
    holds all of a large job's IQ bytes at once (DESIGN §8.14). A Redis error (after the
    client's retries) is :class:`PayloadsUnavailable`: the task's to handle (requeue), never
    the job's failure.
    """

    def __init__(self, client: redis.Redis, job: IQJob) -> None:
        self.redis = client
        self.refs = {i: r.iq_ref for i, r in enumerate(job.receivers) if r.iq_ref is not None}
        self.fetch_s = 0.0  # time spent in Redis so far
        expected = sum(job.receivers[i].expected_bytes for i in self.refs)
        self._small = expected <= PREFETCH_BYTES
        self._prefetch = self._small
        self._fetched: dict[int, bytes | None] = {}

    def get(self, index: int) -> bytes | None:
        """The blob of receiver ``index``, or None when it is missing (expired, never sent)."""
        started = time.perf_counter()
        try:
            self._fetch_small_job()
            if index in self._fetched:
                return self._fetched.pop(index)
            return self.redis.get(self.refs[index]) if index in self.refs else None
        except redis.RedisError as exc:
            raise PayloadsUnavailable(f"IQ blobs unreadable: {exc}") from exc
        finally:
            self.fetch_s += time.perf_counter() - started

    @property
    def small(self) -> bool:
        """Fetched whole in one MGET (else blob by blob, each forgotten once handed out)."""
        return self._small

    def small_job_bytes(self) -> dict[int, bytes | None] | None:
        """All blobs of a small job, fetched now in one MGET and still handed out later; None
        for a job fetched blob by blob."""
        if not self._small:
            return None
        started = time.perf_counter()
        try:
            self._fetch_small_job()
        except redis.RedisError as exc:
            raise PayloadsUnavailable(f"IQ blobs unreadable: {exc}") from exc
        finally:
            self.fetch_s += time.perf_counter() - started
        return dict(self._fetched)

    def _fetch_small_job(self) -> None:
        if self._prefetch and self.refs:
            self._prefetch = False
            self._fetched = dict(
                zip(self.refs, self.redis.mget(list(self.refs.values())), strict=True)
            )

    def __iter__(self) -> Iterator[int]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)
