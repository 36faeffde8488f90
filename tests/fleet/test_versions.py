"""Model versions side by side (A/B) and a default switch by rolling restart, losing no job."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow
MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "v1"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for version in ("v1", "v1b"):
        shutil.copytree(MODEL_DIR, root / version)
    manifest = root / "v1b" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["version"] = "v1b"  # same weights, another version name: enough to test routing
    manifest.write_text(json.dumps(data))
    return root


def _jobs(n: int, seed: int, **fields):
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=seed)
    return [gen.next().to_job(job_id=str(uuid.uuid4()), **fields) for _ in range(n)]


def test_versions_side_by_side(fleet, models_dir):
    fleet.start_node(
        concurrency=1,
        HEIMDALL_MODELS_DIR=str(models_dir),
        HEIMDALL_DEFAULT_MODEL="v1",
        HEIMDALL_SERVE_MODELS='["v1b"]',
    )
    cases = {"default": "v1", "v1": "v1", "v1b": "v1b"}
    for model, served_by in cases.items():
        job = _jobs(1, seed=400, model=model)[0]
        handle = fleet.producer.submit(job)
        expected_queue = fleet.settings.queue("interactive", "v1b" if model == "v1b" else "default")
        assert handle.queue == expected_queue
        result = handle.result(60)
        assert result.status == "ok" and result.model_version == served_by
    unknown = fleet.producer.submit(_jobs(1, seed=401, model="v9")[0])
    assert unknown.queue == fleet.settings.queue("interactive")  # not a queue nobody reads
    assert unknown.result(60).error.code == "unknown_model"
    bulk = fleet.producer.submit(_jobs(1, seed=402, priority="bulk", model="v1b")[0])
    assert bulk.queue == fleet.settings.queue("bulk", "v1b")
    assert bulk.result(60).model_version == "v1b"
    fleet.stop_nodes()


def test_switching_the_default_model_drops_no_job(fleet, models_dir):
    env = {"HEIMDALL_MODELS_DIR": str(models_dir)}
    old = fleet.start_node(concurrency=2, HEIMDALL_DEFAULT_MODEL="v1", **env)
    before = _jobs(40, seed=403)
    handles = fleet.producer.submit_many(before)  # in flight during the switch
    fleet.start_node(concurrency=2, HEIMDALL_DEFAULT_MODEL="v1b", **env)
    assert old.stop() == 0  # warm shutdown of the old version
    after = _jobs(10, seed=404)
    handles += fleet.producer.submit_many(after)
    results = [h.result(120) for h in handles]
    assert [r.job_id for r in results] == [j.job_id for j in before + after]
    assert all(r.status == "ok" for r in results)
    assert {r.model_version for r in results[len(before) :]} == {"v1b"}
    assert "v1" in {r.model_version for r in results[: len(before)]}
    assert all(fleet.computations(j.job_id) == 1 for j in before + after)
