"""Result cache keys: what decides a result is in the key, the job id is not."""

from __future__ import annotations

import uuid

from heimdall.schemas.result import Result
from heimdall.sim import ScenarioGenerator, SimConfig
from heimdall.store.cache import cache_key, capture_bytes, readdressed


def _job(**fields):
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=5)
    return gen.next().to_job(job_id=str(uuid.uuid4()), **fields)


def test_key_ignores_the_job_id_and_follows_content_version_method_confidence():
    job = _job()
    iq = capture_bytes(job, {})
    key = cache_key(job, iq, "v1")
    assert cache_key(job.model_copy(update={"job_id": str(uuid.uuid4())}), iq, "v1") == key
    assert cache_key(job, iq, "v2") != key
    assert cache_key(job.model_copy(update={"method": "rss"}), iq, "v1") != key
    assert cache_key(job.model_copy(update={"confidence": 0.5}), iq, "v1") != key
    changed = dict(iq)
    changed[0] = bytes([iq[0][0] ^ 1]) + iq[0][1:]
    assert cache_key(job, changed, "v1") != key
    moved = job.receivers[0].model_copy(update={"lat": job.receivers[0].lat + 1e-6})
    assert (
        cache_key(job.model_copy(update={"receivers": [moved, *job.receivers[1:]]}), iq, "v1")
        != key
    )


def test_missing_bytes_mean_no_key():
    job = _job()
    blob_job = job.model_copy(
        update={
            "receivers": [
                r.model_copy(update={"iq_b64": None, "iq_ref": "k"}) for r in job.receivers
            ]
        }
    )
    assert capture_bytes(blob_job, {0: b"x"}) is None


def test_readdressed_result_carries_the_new_id_everywhere():
    body = {
        "job_id": "a", "status": "ok", "model_version": "v1", "ab_arm": "v1", "batch_id": "b",
        "geojson": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"job_id": "a"}, "geometry": None}]},
        "timings_ms": {"features": 3.0},
    }  # fmt: skip
    out = readdressed(Result.model_validate(body), "new")
    assert out.job_id == "new" and out.geojson["features"][0]["properties"]["job_id"] == "new"
    assert out.cache == "hit" and out.timings_ms.features is None
    assert out.ab_arm is None and out.batch_id is None  # set from the new job when published
