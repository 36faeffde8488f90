"""No job is ever dropped: a child killed mid-job, a job busy past Celery's retry default, a
result stored but not published, a child killed while the node boots, a node that cannot go on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import states

from heimdall.config.celery import celery_app
from heimdall.harness.node import WorkerProcess
from heimdall.schemas import Result
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _job(seed: int, num_samples: int = 10_000):
    cfg = SimConfig(network="reference", missing_probability=0.0, num_samples=num_samples)
    return ScenarioGenerator(cfg, seed=seed).next().to_job("ci16_le", job_id=str(uuid.uuid4()))


@pytest.fixture(scope="module")
def fleet1(fleet):
    """One node, one child, busy jobs looked at again every second."""
    fleet.start_node(concurrency=1, HEIMDALL_BUSY_RETRY_S="1")
    return fleet


def _stream_entries(f, job_id: str) -> list[Result]:
    return [r for _, r in f.feed.read_stream("0-0") if r.job_id == job_id]


def _wait_published(f, job_id: str, timeout_s: float = 60.0) -> list[Result]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = _stream_entries(f, job_id)
        if entries:
            time.sleep(1.0)  # a duplicate, if any, would show up now
            return _stream_entries(f, job_id)
        time.sleep(0.05)
    return []


def test_child_killed_mid_job_runs_it_again_at_once(fleet1):
    f = fleet1
    job = _job(seed=1, num_samples=400_000)  # about a second of features
    claim_key = f.settings.job_key(job.job_id, "claim")
    f.producer.submit(job)
    deadline = time.monotonic() + 60
    while (holder := f.redis.get(claim_key)) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert holder is not None, "the job was never claimed"
    os.kill(int(holder.decode().rsplit(":", 1)[1]), signal.SIGKILL)
    killed_at = time.monotonic()
    entries = _wait_published(f, job.job_id)
    assert len(entries) == 1 and entries[0].status == "ok", entries
    assert f.computations(job.job_id) == 2
    # the main process released the dead child's claim: no wait for its expiry (hard limit)
    assert time.monotonic() - killed_at < f.settings.hard_time_limit_s


def test_busy_job_waits_past_celerys_retry_default(fleet1):
    """Held by another child for 7 s with a look every 1 s: Celery's default cap of 3
    retries would have dropped it."""
    f = fleet1
    job = _job(seed=2)
    f.redis.set(f.settings.job_key(job.job_id, "claim"), "elsewhere:1", px=7000)
    f.producer.submit(job)
    entries = _wait_published(f, job.job_id, timeout_s=60)
    assert len(entries) == 1 and entries[0].status == "ok"


def test_stored_but_unpublished_result_is_published_not_recomputed(fleet1):
    f = fleet1
    job = _job(seed=3)
    stored = Result(
        job_id=job.job_id, status="ok", model_version="v1", worker="the-earlier-delivery"
    )
    app = celery_app(f.settings, "test-backend")
    app.backend.store_result(job.job_id, stored.model_dump(mode="json", by_alias=True), "SUCCESS")
    f.redis.set(f.settings.job_key(job.job_id, "attempts"), 1)  # that delivery took it once
    f.producer.submit(job)
    entries = _wait_published(f, job.job_id)
    assert len(entries) == 1 and entries[0].worker == "the-earlier-delivery"
    assert app.backend.get_task_meta(job.job_id)["status"] == states.SUCCESS
    app.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_child_killed_while_the_node_boots_is_replaced(fleet, tmp_path):
    f = fleet
    log = tmp_path / "boot.log"
    worker = WorkerProcess(f.settings, 2, log_path=log, name=f"boot-{uuid.uuid4().hex[:6]}@%h")
    worker.process = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "worker", "--concurrency", "2",
         "--name", worker.name, "--loglevel", "INFO"],
        env=worker.env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (kids := _children(worker.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kids, "no child was forked"
    os.kill(kids[0], signal.SIGKILL)  # before the node is ready
    try:
        worker.wait_ready(60)
        job = _job(seed=4)
        assert f.producer.submit(job).result(timeout_s=60).status == "ok"
        assert worker.process.poll() is None
        # replaced: by the pool's own maintenance, or by PreforkPool.did_start_ok when the
        # loss is seen as the consumer starts (which one depends on timing)
        alive = _children(worker.process.pid)
        assert kids[0] not in alive and len(alive) == 2
    finally:
        worker.stop()


def test_node_that_cannot_go_on_exits_non_zero(fleet, tmp_path, model_dir):
    tampered = tmp_path / "models"
    shutil.copytree(model_dir.parent, tampered)
    onnx = tampered / model_dir.name / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    done = subprocess.run(
        [sys.executable, "-m", "heimdall.cli", "worker", "--concurrency", "1", "--name", "bad@%h"],
        env={**os.environ, **fleet.env, "HEIMDALL_MODELS_DIR": str(tampered)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "sha256" in (done.stdout + done.stderr)


@pytest.mark.redis_broker
def test_expired_message_gets_a_failed_result(fleet1):
    """Celery drops a message past its `expires` header; the job still gets its answer."""
    from heimdall.broker.envelope import job_message as raw_message

    f = fleet1
    job = _job(seed=6)
    queue = f.settings.queue("interactive")
    message = json.loads(raw_message(job.model_dump(mode="json", by_alias=True), queue))
    message["headers"]["expires"] = "2020-01-01T00:00:00+00:00"
    f.redis.lpush(f"{f.settings.key_prefix}:{queue}", json.dumps(message))
    entries = _wait_published(f, job.job_id)
    assert len(entries) == 1 and entries[0].status == "failed"
    assert entries[0].error.code == "timeout" and "expired" in entries[0].error.message


@pytest.mark.redis_broker
def test_no_iq_reaches_the_worker_log(fleet1, tmp_path):
    """A failing inline job's base64 IQ never appears in the node's log."""
    f = fleet1
    job = _job(seed=5)
    data = job.model_dump(mode="json", by_alias=True)
    data["job_id"] = str(uuid.uuid4())  # ≠ the task id: the task fails it and logs why
    marker = data["receivers"][0]["iq_b64"][1000:1100]
    from heimdall.broker.envelope import job_message as raw_message

    queue = f.settings.queue("interactive")
    message = raw_message(data, queue).replace(data["job_id"], job.job_id, 3)
    f.redis.lpush(f"{f.settings.key_prefix}:{queue}", message)
    entries = _wait_published(f, job.job_id)
    assert entries and entries[0].status == "failed"
    logs = "".join(p.read_text(errors="replace") for p in f.log_dir.glob("*.log"))
    assert job.job_id in logs and marker not in logs
