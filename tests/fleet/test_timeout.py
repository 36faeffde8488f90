"""A job over the soft time limit becomes a ``failed`` result with code ``timeout``."""

from __future__ import annotations

import uuid

import pytest

from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def test_soft_time_limit_gives_a_timeout_result(fleet):
    fleet.start_node(
        concurrency=1,
        HEIMDALL_SOFT_TIME_LIMIT_S="0.05",
        HEIMDALL_HARD_TIME_LIMIT_S="10",
        HEIMDALL_VISIBILITY_TIMEOUT_S="20",
    )
    # 7 receivers × 400 000 samples: about 0.15 s of features, far over 0.05 s
    cfg = SimConfig(network="reference", missing_probability=0.0, num_samples=400_000)
    long_job = ScenarioGenerator(cfg, seed=500).next().to_job(job_id=str(uuid.uuid4()))
    result = fleet.producer.submit(long_job).result(60)
    assert result.status == "failed"
    assert result.error.code == "timeout" and "soft time limit" in result.error.message
    streamed = fleet.stream_until({long_job.job_id})
    assert long_job.job_id in {r.job_id for _, r in streamed}
    # the child survives its soft limit and keeps serving (a quick job: 2 short captures)
    small = SimConfig(network="reference", missing_probability=0.0, num_samples=1_000)
    few = ScenarioGenerator(small, seed=501).next().to_job(job_id=str(uuid.uuid4()))
    few = few.model_copy(update={"receivers": few.receivers[:2]})
    assert fleet.producer.submit(few).result(60).error.code == "too_few_receivers"
