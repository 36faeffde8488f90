"""The model-lifecycle figures of issue 9, measured on a private redis-server and one real
worker node (2 children) serving v1 and a copy of it named v2 (and a v3 whose ONNX file was
altered after its manifest was written):

1. A/B: 2000 jobs under a 0.9/0.1 split — each arm's share, and the same ids again;
2. reload to v2 in the middle of a 500-job run, then to the broken v3;
3. the result cache: recordings resubmitted under new job ids, one at a time;
4. a batch of 100 jobs of which 10 are malformed.

usage: .venv/bin/python scripts/lifecycle_figures.py   (about 2 minutes)
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from heimdall.client import Producer, ResultFeed
from heimdall.client.ab import write_split
from heimdall.config import Settings
from heimdall.config.celery import celery_app
from heimdall.harness.console import format_table
from heimdall.harness.fleet import LocalFleet
from heimdall.inference.localizer import Localizer
from heimdall.sim import ScenarioGenerator, SimConfig
from heimdall.workers.control import RELOAD_COMMAND

MODEL = Path(__file__).resolve().parents[1] / "models" / "v1"


def model_copies(root: Path) -> None:
    for version in ("v1", "v2", "v3"):
        shutil.copytree(MODEL, root / version)
        manifest = root / version / "manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": version}))
    onnx = next((root / "v3").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)


def jobs(n: int, seed: int, **fields) -> list:
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=seed)
    return [gen.next().to_job(job_id=str(uuid.uuid4()), **fields) for _ in range(n)]


def reload(settings: Settings, version: str) -> dict:
    app = celery_app(settings, "figures-reload")
    try:
        replies = app.control.broadcast(
            RELOAD_COMMAND, arguments={"version": version}, reply=True, timeout=5.0, limit=1
        )
    finally:
        app.close()
    return next(iter(replies[0].values()))


def ab_split(producer: Producer, settings: Settings) -> list[list]:
    write_split(producer.redis, settings, {"v1": 0.9, "v2": 0.1}, shadow=None)
    batch = jobs(2000, seed=1)
    results = [h.result(300) for h in producer.submit_many(batch)]
    arms = Counter(r.ab_arm for r in results)
    again = [h.result(300) for h in producer.submit_many(batch[:200])]
    same = sum(a.ab_arm == r.ab_arm for a, r in zip(again, results[:200], strict=True))
    producer.redis.delete(settings.ab_split_key)
    return [
        ["A/B 0.9/0.1, 2000 jobs: share v1", f"{arms['v1'] / 2000:.3f}"],
        ["share v2", f"{arms['v2'] / 2000:.3f}"],
        ["model_version = arm", sum(r.model_version == r.ab_arm for r in results)],
        ["same arm when 200 ids are resubmitted", f"{same}/200"],
    ]  # fmt: skip


def reload_run(producer: Producer, settings: Settings) -> list[list]:
    run = jobs(500, seed=2)
    handles, replies = [], {}

    def submit() -> None:
        for k in range(0, 500, 10):
            handles.extend((time.time(), h) for h in producer.submit_many(run[k : k + 10]))
            time.sleep(0.1)

    feeder = threading.Thread(target=submit)
    feeder.start()
    time.sleep(2.0)
    replies["v2"] = reload(settings, "v2")
    reloaded_at = time.time()
    feeder.join()
    replies["v3"] = reload(settings, "v3")
    results = [(t, h.result(300)) for t, h in handles]
    after = [r for t, r in results if t > reloaded_at]
    statuses = Counter(r.status for _, r in results)
    localizer = Localizer(MODEL)
    alone = Counter(localizer.localize(job).status for job in run)
    return [
        ["reload mid-run: jobs submitted / results", f"{len(handles)} / {len(results)}"],
        ["failed", statuses.get("failed", 0)],
        ["failure codes", json.dumps(Counter(r.error.code.value for _, r in results if r.error))],
        ["the same 500 jobs in process, no fleet: failed", alone.get("failed", 0)],
        ["jobs submitted after the reload reply", len(after)],
        ["… of them on v2", sum(r.model_version == "v2" for r in after)],
        ["reload to v2: reply", "ok" if replies["v2"]["ok"] else replies["v2"]["error"]],
        ["reload to broken v3: reply", replies["v3"].get("error", "ok")[:70]],
        ["still serving after the refusal", replies["v3"].get("serving")],
    ]


def cache_latency(producer: Producer, settings: Settings) -> list[list]:
    feed = ResultFeed(settings)
    sample = jobs(40, seed=3)
    first = [h.result(60) for h in producer.submit_many(sample)]
    pubsub = feed.open_subscription()
    latencies, hits = [], 0
    try:
        for job in sample:
            copy = job.model_copy(update={"job_id": str(uuid.uuid4())})
            started = time.perf_counter()
            producer.submit(copy)
            for result in feed.listen(pubsub, timeout_s=10):
                if result.job_id == copy.job_id:
                    latencies.append((time.perf_counter() - started) * 1e3)
                    hits += result.cache == "hit"
                    break
    finally:
        pubsub.close()
    ok = sum(r.status == "ok" for r in first)
    return [
        ["cache: resubmitted under new ids, hits", f"{hits}/{len(sample)} ({ok} were ok)"],
        ["submit→result p50 ms", f"{statistics.median(latencies):.2f}"],
        ["submit→result max ms", f"{max(latencies):.2f}"],
    ]


def batch_run(producer: Producer) -> list[list]:
    items: list = jobs(90, seed=4)
    bad = jobs(10, seed=5)
    items += [j.model_copy(update={"receivers": j.receivers[:2]}) for j in bad[:5]]
    items += [{"schema": "heimdall.iqjob/1", "job_id": "not-a-uuid", "receivers": []}] * 5
    batch = producer.submit_batch(items)
    for h in batch.handles:
        h.result(120)
    deadline = time.monotonic() + 10
    while batch.summary() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    summary = batch.summary() or {}
    return [
        ["batch of 100 (10 malformed): statuses", json.dumps(summary.get("statuses"))],
        ["codes", json.dumps(summary.get("codes"))],
        ["summaries on the stream", sum(
            s["batch_id"] == batch.batch_id
            for _, s in ResultFeed(producer.settings).batch_summaries()
        )],
    ]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        model_copies(root)
        settings = Settings(key_prefix="figures", metrics_port=None, models_dir=root)
        with LocalFleet(settings) as fleet:
            settings, producer, rows = fleet.settings, fleet.producer, []
            fleet.start_node(2, HEIMDALL_SERVE_MODELS='["v2"]')
            rows += ab_split(producer, settings)
            fleet.stop_nodes()
            producer.redis.delete(settings.served_by_key)
            fleet.start_node(2)
            rows += reload_run(producer, settings)
            rows += cache_latency(producer, settings)
            rows += batch_run(producer)
        print(format_table(["model lifecycle (1 node × 2 children)", "value"], rows))


if __name__ == "__main__":
    main()
