"""Result cache (DESIGN §12): the same recording, model version, method and confidence give the
same answer, so a resubmission is answered from Redis without computing.

The key is a SHA-256 over the IQ bytes of every capture, each capture's metadata (all fields but
where its IQ lives), the serving model version, the method asked for and the confidence — never
the job id. Only ``ok`` results are kept (a failure may be transient). Jobs whose IQ is fetched
blob by blob (more than ``PREFETCH_BYTES``) are not cached: hashing them would mean holding or
fetching all their IQ twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import redis

from heimdall.config import Settings
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result

KEY_VERSION = b"heimdall.cache/1"


def cache_key(job: IQJob, iq: dict[int, bytes], model_version: str) -> str:
    """Hex SHA-256 of what determines a result; ``iq`` holds every capture's bytes by index."""
    digest = hashlib.sha256(KEY_VERSION)
    header = {"model": model_version, "method": job.method, "confidence": job.confidence}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for index, capture in enumerate(job.receivers):
        metadata = capture.model_dump(mode="json", exclude={"iq_ref", "iq_b64"})
        digest.update(json.dumps(metadata, sort_keys=True).encode())
        digest.update(hashlib.sha256(iq[index]).digest())
    return digest.hexdigest()


def capture_bytes(job: IQJob, fetched: dict[int, bytes | None]) -> dict[int, bytes] | None:
    """Every capture's IQ bytes (inline or fetched blobs), or None when one is missing or not
    decodable (the Localizer then fails the job with the right code)."""
    out: dict[int, bytes] = {}
    for index, capture in enumerate(job.receivers):
        if capture.iq_b64 is not None:
            try:
                out[index] = capture.inline_bytes()
            except ValueError:
                return None
        elif (blob := fetched.get(index)) is not None:
            out[index] = blob
        else:
            return None
    return out


class ResultCache:
    """``{prefix}:cache:{key}`` → a result's JSON, for ``cache_ttl_s``."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings

    def get(self, key: str, job_id: str) -> Result | None:
        """The cached answer, re-addressed to ``job_id`` (its own id, time and GeoJSON)."""
        return self.get_many([(key, job_id)])[0]

    def get_many(self, wanted: list[tuple[str, str]]) -> list[Result | None]:
        """:meth:`get` for several ``(key, job_id)`` in one round trip."""
        if not wanted:
            return []
        bodies = self.redis.mget([self.settings.cache_key(key) for key, _ in wanted])
        return [
            None if body is None else readdressed(Result.model_validate_json(body), job_id)
            for body, (_, job_id) in zip(bodies, wanted, strict=True)
        ]

    def put(
        self, key: str, result: Result, result_json: str | None = None, client: Any = None
    ) -> None:
        """Keep an ``ok`` result under ``key`` for ``cache_ttl_s`` (``client``: a pipeline the
        write rides in; ``result_json``: the result already serialized)."""
        if result.status == "ok":
            value = result_json if result_json is not None else result.to_json()
            target = client if client is not None else self.redis
            target.set(self.settings.cache_key(key), value, ex=self.settings.cache_ttl_s)


def readdressed(result: Result, job_id: str) -> Result:
    """``result`` as the answer to another job: its id everywhere, a new completion time, no
    stage timings of the job that computed it."""
    geojson = json.loads(json.dumps(result.geojson)) if result.geojson else None
    for feature in (geojson or {}).get("features", []):
        properties = feature.get("properties") or {}
        if "job_id" in properties:
            properties["job_id"] = job_id
    return result.model_copy(
        update={
            "job_id": job_id,
            "geojson": geojson,
            "completed_at": datetime.now(UTC),
            "timings_ms": type(result.timings_ms)(),
            "cache": "hit",
            "ab_arm": None,
            "batch_id": None,
        }
    )
