"""``heimdall demo``: the whole fleet in one command, on this machine.

Redis (the configured one, or a private ``redis-server`` when none answers) → worker nodes
(prefork children with preloaded ONNX sessions) → a producer submitting simulated jobs →
results read live from pub/sub and shown against the simulator's truth → clean shutdown.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from heimdall.cli.console import Progress, format_table
from heimdall.cli.redis_server import PrivateRedis, reachable
from heimdall.cli.report import RESULT_HEADERS, error_m, inside_ellipse, result_row
from heimdall.client import Producer, ResultFeed
from heimdall.config import get_settings, redacted_url
from heimdall.sim import ScenarioGenerator, SimConfig
from heimdall.workers.process import WorkerProcess


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(
    jobs: int = 40,
    nodes: int = 1,
    concurrency: int | None = None,
    network: str = "reference",
    seed: int = 2026,
    timeout_s: float = 300.0,
) -> int:
    base = get_settings()
    concurrency = concurrency or base.concurrency
    with ExitStack() as stack:
        url = base.redis_url
        if reachable(url):
            say(f"using Redis at {redacted_url(url)} (keys under '{base.key_prefix}:')")
        else:
            url = stack.enter_context(PrivateRedis()).url
            say(
                f"no Redis answers at {redacted_url(base.redis_url)}; started a private "
                f"redis-server at {url}"
            )
        settings = base.model_copy(update={"redis_url": url})
        env = {"HEIMDALL_REDIS_URL": url}
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="heimdall-demo-")))
        workers = []
        for i in range(nodes):
            say(f"starting worker node {i + 1}/{nodes} ({concurrency} prefork children)")
            w = WorkerProcess(settings, concurrency, env, log_path=log_dir / f"worker{i}.log")
            try:
                workers.append(stack.enter_context(w))
            except (RuntimeError, TimeoutError) as exc:
                say(f"worker failed to start: {exc}; its log:")
                print((log_dir / f"worker{i}.log").read_text()[-4000:])
                return 1
        say(f"fleet ready: {nodes} node(s) × {concurrency} children")

        feed = ResultFeed(settings)
        pubsub = feed.open_subscription()
        gen = ScenarioGenerator(SimConfig(network=network), seed=seed)
        producer = Producer(settings)
        truth, sent_s = {}, {}
        progress = Progress(jobs, "submit")
        for i in range(jobs):
            sc = gen.next()
            # fresh job ids: a rerun must not be answered from the results of the last one
            handle = producer.submit(sc.to_job(job_id=str(uuid.uuid4())))
            truth[handle.job_id] = (sc.true_lat, sc.true_lon)
            sent_s[handle.job_id] = handle.submitted_s
            progress.update(i + 1)

        results = {}
        got = Progress(jobs, "results")
        deadline = time.monotonic() + timeout_s
        while len(results) < jobs and time.monotonic() < deadline:
            for result in feed.listen(pubsub, timeout_s=1.0):
                if result.job_id in truth:
                    results[result.job_id] = (result, (time.time() - sent_s[result.job_id]) * 1e3)
                    got.update(len(results))
                if len(results) == jobs:
                    break
        pubsub.close()
        _show(results, truth, jobs)
        say("stopping workers (warm shutdown)")
        for w in workers:
            w.stop()
    say("done")
    return 0 if len(results) == jobs else 1


def _show(results: dict, truth: dict, jobs: int) -> None:
    rows = [result_row(r, truth[job_id], latency) for job_id, (r, latency) in results.items()]
    print(format_table(RESULT_HEADERS, rows))
    ok = [(r, truth[j]) for j, (r, _) in results.items() if r.status == "ok"]
    errors_km = [error_m(r, *t) / 1000.0 for r, t in ok]
    inside = [inside_ellipse(r, *t) for r, t in ok]
    latencies = sorted(latency for _, latency in results.values())
    print()
    summary = [
        ["results", f"{len(results)}/{jobs}"],
        ["ok / failed", f"{len(ok)} / {len(results) - len(ok)}"],
    ]
    if errors_km:
        summary += [
            ["median error", f"{statistics.median(errors_km):.1f} km"],
            ["truth inside 95 % ellipse", f"{sum(inside)}/{len(inside)}"],
        ]
    if latencies:
        summary += [["latency p50 (submit → result)", f"{statistics.median(latencies):.0f} ms"]]
    print(format_table(["summary", "value"], summary))
