"""Model lifecycle with real workers (DESIGN §12): A/B arms and shadows, the result cache,
batches, and hot reload (broadcast command and SIGHUP) during a run, with a broken model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from heimdall.client.ab import clear_split, write_split
from heimdall.config.celery import celery_app
from heimdall.sim import ScenarioGenerator, SimConfig
from heimdall.workers.control import RELOAD_COMMAND

pytestmark = pytest.mark.slow
MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "v1"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """v1, v2 (the same weights under another name: enough for routing and swaps) and v3,
    whose ONNX file was altered after its manifest was written."""
    root = tmp_path_factory.mktemp("models")
    for version in ("v1", "v2", "v3"):
        shutil.copytree(MODEL_DIR, root / version)
        manifest = root / version / "manifest.json"
        data = json.loads(manifest.read_text())
        data["version"] = version
        manifest.write_text(json.dumps(data))
    onnx = next((root / "v3").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)
    return root


def _jobs(n: int, seed: int, **fields):
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=seed)
    return [gen.next().to_job(job_id=str(uuid.uuid4()), **fields) for _ in range(n)]


def _broadcast_reload(fleet, version: str | None) -> dict:
    app = celery_app(fleet.settings, "test-reload")
    try:
        replies = app.control.broadcast(
            RELOAD_COMMAND, arguments={"version": version}, reply=True, timeout=5.0
        )
    finally:
        app.close()
    (reply,) = [r for answer in replies for r in answer.values()]
    return reply


def _serving(fleet) -> list[dict]:
    raw = fleet.redis.hgetall(fleet.settings.serving_key)
    return [json.loads(v) for v in raw.values()]


def _wait_children_at(fleet, generation: int, count: int, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = [r for r in _serving(fleet) if r["generation"] >= generation]
        if len(records) >= count:
            return records
        time.sleep(0.05)
    raise AssertionError(f"children not at generation {generation}: {_serving(fleet)}")


def test_ab_arms_route_record_and_shadow(fleet, models_dir):
    fleet.start_node(
        concurrency=2, HEIMDALL_MODELS_DIR=str(models_dir), HEIMDALL_SERVE_MODELS='["v2"]'
    )
    write_split(fleet.redis, fleet.settings, {"v1": 0.5, "v2": 0.5}, shadow=1.0)
    try:
        jobs = _jobs(30, seed=900)
        results = [h.result(60) for h in fleet.producer.submit_many(jobs)]
        again = [h.result(60) for h in fleet.producer.submit_many(jobs[:5])]  # same ids
    finally:
        clear_split(fleet.redis, fleet.settings)
    assert all(r.status == "ok" and r.ab_arm == r.model_version for r in results)
    assert {r.ab_arm for r in results} == {"v1", "v2"}
    assert [r.ab_arm for r in again] == [r.ab_arm for r in results[:5]]  # same id, same arm
    shadows = fleet.redis.xrange(fleet.settings.ab_shadow_key)
    assert len(shadows) >= 25  # every A/B job was also scored by the other arm (cache aside)
    fields = shadows[0][1]
    assert {fields[b"arm"], fields[b"other"]} == {b"v1", b"v2"}
    assert float(fields[b"distance_m"]) < 1.0  # v2 is v1 under another name


def test_resubmitted_recording_is_answered_from_the_cache_under_its_own_id(fleet):
    job = _jobs(1, seed=901)[0]
    first = fleet.producer.submit(job).result(60)
    copy = job.model_copy(update={"job_id": str(uuid.uuid4())})
    second = fleet.producer.submit(copy).result(60)
    assert (first.cache, second.cache) == ("miss", "hit")
    assert second.job_id == copy.job_id and second.position == first.position
    point = second.geojson["features"][0]["properties"]
    assert point["job_id"] == copy.job_id
    other = job.model_copy(update={"job_id": str(uuid.uuid4()), "confidence": 0.5})
    assert fleet.producer.submit(other).result(60).cache == "miss"  # confidence is in the key


def test_batch_with_malformed_jobs_ends_in_one_summary(fleet):
    jobs: list = _jobs(16, seed=902)
    few = _jobs(1, seed=903)[0]
    jobs.append(few.model_copy(update={"receivers": few.receivers[:2]}))  # too_few_receivers
    jobs.append({"schema": "heimdall.iqjob/1", "receivers": []})  # invalid_job
    jobs.append({"hello": "world"})  # invalid_job, no job id at all
    jobs.append("not even an object")  # invalid_job
    batch = fleet.producer.submit_batch(jobs)
    results = [h.result(60) for h in batch.handles]
    assert len({r.job_id for r in results}) == 20
    assert sum(r.status == "ok" for r in results) == 16
    codes = sorted(r.error.code.value for r in results if r.status == "failed")
    assert codes == ["invalid_job"] * 3 + ["too_few_receivers"]
    assert {r.batch_id for r in results} == {batch.batch_id}
    deadline = time.monotonic() + 10
    while batch.summary() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    summary = batch.summary()
    assert summary["total"] == summary["ended"] == 20
    assert summary["statuses"] == {"ok": 16, "failed": 4}
    assert summary["codes"] == {"invalid_job": 3, "too_few_receivers": 1}
    on_stream = [s for _, s in fleet.feed.batch_summaries() if s["batch_id"] == batch.batch_id]
    assert len(on_stream) == 1


def test_reload_mid_run_drops_nothing_and_a_broken_model_is_refused(fleet, models_dir):
    fleet.stop_nodes()
    fleet.redis.delete(fleet.settings.serving_key)
    fleet.start_node(concurrency=2, HEIMDALL_MODELS_DIR=str(models_dir))
    _wait_children_at(fleet, 1, 2)
    before = fleet.producer.submit_many(_jobs(60, seed=904))
    reply = _broadcast_reload(fleet, "v2")
    assert reply["ok"] and reply["version"] == "v2" and reply["previous"] == "v1"
    _wait_children_at(fleet, reply["generation"], 2)
    after = fleet.producer.submit_many(_jobs(30, seed=905))
    broken = _broadcast_reload(fleet, "v3")
    assert not broken["ok"] and "sha256" in broken["error"]
    assert broken["serving"] == "v2"
    later = fleet.producer.submit_many(_jobs(20, seed=906))
    results = [h.result(120) for h in before + after + later]
    assert all(r.status == "ok" for r in results)
    assert {r.model_version for r in results[60:]} == {"v2"}
    assert all(fleet.computations(h.job_id) == 1 for h in before + after + later)
    explicit = fleet.producer.submit(_jobs(1, seed=907, model="v2")[0]).result(60)
    assert explicit.status == "ok" and explicit.model_version == "v2"  # its queue is consumed


def test_sighup_reloads_in_place_instead_of_restarting_the_node(fleet):
    worker = fleet.nodes[-1]
    generation = max(r["generation"] for r in _serving(fleet))
    pid = worker.process.pid
    worker.process.send_signal(signal.SIGHUP)
    records = _wait_children_at(fleet, generation + 1, 2)
    assert worker.process.poll() is None and worker.process.pid == pid
    assert all(r["versions"] == ["v2"] and r["error"] is None for r in records)
    assert fleet.producer.submit(_jobs(1, seed=908)[0]).result(60).model_version == "v2"


def _cli(fleet, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **fleet.env}
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", *argv], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_commands_say_what_happened(fleet):
    refused = _cli(fleet, "reload", "--version", "v3")
    assert refused.returncode == 1
    assert "refused" in refused.stdout and "sha256" in refused.stdout and "v2" in refused.stdout
    again = _cli(fleet, "reload")  # the current version, re-read from disk
    assert again.returncode == 0 and "2/2 children swapped" in again.stdout
    status = _cli(fleet, "status")
    assert status.returncode == 0 and status.stdout.count(" v2 ") >= 2  # both children
    unserved = _cli(fleet, "ab", "set", "v2=0.5", "v9=0.5")
    assert unserved.returncode == 1 and "no worker node serves v9" in unserved.stderr
    bad = _cli(fleet, "ab", "set", "v2=lots")
    assert bad.returncode == 2 and "'v2=lots': weight 'lots' is not a number" in bad.stderr
    shown = _cli(fleet, "ab", "set", "v2=1")
    assert shown.returncode == 0 and "A/B split from redis" in shown.stdout
    assert _cli(fleet, "ab", "clear").returncode == 0
    batch = fleet.producer.submit_batch(_jobs(3, seed=909))
    for h in batch.handles:
        h.result(60)
    shown = _cli(fleet, "batch", "show", batch.batch_id[:8])  # as tables show it
    assert shown.returncode == 0 and "status ok" in shown.stdout and "done" in shown.stdout
    assert batch.batch_id in shown.stdout
    view = json.loads(_cli(fleet, "batch", "show", batch.batch_id[:8], "--json").stdout)
    assert view["batch_id"] == batch.batch_id and view["done"] is True
    assert (view["total"], view["ended"], view["pending"]) == (3, 3, 0)  # numbers, not strings
    assert sum(view["statuses"].values()) == 3
    for moment in ("created_at", "finished_at"):  # both RFC 3339, UTC
        assert datetime.fromisoformat(view[moment]).utcoffset() == timedelta(0)
    assert _cli(fleet, "batch", "show", str(uuid.uuid4())).returncode == 1


def test_a_version_reloaded_away_is_served_no_more(fleet):
    """Reload to v1 and back to v2: v1 is not "served" for 90 s more (it was, by the old
    per-version announcements), so `ab set` refuses it and producers route nothing to it."""
    assert _cli(fleet, "reload", "--version", "v1").returncode == 0
    assert _cli(fleet, "reload", "--version", "v2").returncode == 0
    refused = _cli(fleet, "ab", "set", "v2=0.9", "v1=0.1")
    assert refused.returncode == 1 and "no worker node serves v1" in refused.stderr
    shown = _cli(fleet, "ab", "show")
    assert shown.returncode == 0, shown.stderr
    job = _jobs(1, seed=910)[0].model_copy(update={"model": "v1"})
    result = fleet.producer.submit(job).result(60)  # v1 unserved: the default queue, refused
    assert result.status == "failed" and result.error.code.value == "unknown_model"
