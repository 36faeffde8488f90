"""The fleet measured (DESIGN §9): one worker node of P prefork children behind Redis, a
producer and a result listener on the same machine (they share its cores; that is part of what
the fleet costs here): saturated throughput, CPU per job per process, latency at a fraction of
the saturated rate with per-stage medians, an audit, the TDoA cases through the fleet."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from heimdall.client import Producer, ResultFeed, ResultListener
from heimdall.config import Settings
from heimdall.harness.console import Progress
from heimdall.harness.fleet import LocalFleet
from heimdall.harness.node import WorkerProcess
from heimdall.measure.compute import standard_jobs, tdoa_jobs, with_payloads
from heimdall.schemas.job import IQJob


def wait_for(clock: ResultListener, job_ids: set[str], timeout_s: float, label: str) -> None:
    """Until every one of ``job_ids`` was heard, with a progress bar."""
    clock.wait_for(job_ids, timeout_s, Progress(len(job_ids), label).update)


def _percentiles(values: list[float]) -> dict:
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def fleet(
    local: LocalFleet,
    jobs: list[IQJob],
    single_jobs: list[IQJob],
    ci16_jobs: list[IQJob],
    latency_jobs: list[IQJob],
    processes: int,
    rate_fraction: float,
    timeout_s: float = 600.0,
    with_tdoa: bool = True,
) -> dict:
    """Saturated throughput of ``jobs`` as bulk jobs (packed by the producer) and of
    ``single_jobs`` as interactive ones (one message each) and of ``ci16_jobs`` as bulk jobs
    (IQ as 16-bit integers: half the bytes through Redis), with the CPU time each process
    spent per job; then open-loop latency of interactive jobs at ``rate_fraction`` of the
    latter; then (with ``with_tdoa``) the TDoA cases one by one."""
    settings, producer = local.settings, local.producer
    redis_pid = local.server.process.pid if local.server is not None else None
    warm = standard_jobs(4 * processes, seed=1)
    node_started = time.time()
    node = local.start_node(processes)
    with local.listener() as clock:
        producer.submit_many(warm)
        wait_for(clock, {j.job_id for j in warm}, 120, "warm-up")
        cold_start_s = min(clock.received[j.job_id][0] for j in warm) - node_started

        bulk = [j.model_copy(update={"priority": "bulk"}) for j in jobs]
        saturated, handles = _saturated(producer, clock, node, redis_pid, bulk, timeout_s)
        audit = _audit(producer, settings, [h.job_id for h in handles], clock)
        single, _ = _saturated(producer, clock, node, redis_pid, single_jobs, timeout_s)
        bulk16 = [j.model_copy(update={"priority": "bulk"}) for j in ci16_jobs]
        ci16, _ = _saturated(producer, clock, node, redis_pid, bulk16, timeout_s)

        rate = rate_fraction * single["jobs_per_s"]
        open_loop = _open_loop(producer, clock, latency_jobs, rate, timeout_s)
        stages = _stage_medians(
            [clock.result(j.job_id) for j in latency_jobs if j.job_id in clock.received]
        )
        tdoa = _tdoa_through_fleet(producer, clock, timeout_s) if with_tdoa else None
    local.stop_nodes()
    report = {
        "processes": processes,
        "cold_start_s": cold_start_s,
        "saturated": saturated,
        "saturated_single": single,
        "saturated_ci16": ci16,
        "audit": audit,
        "half_load": {**open_loop, "stage_ms_median": stages},
    }
    if tdoa is not None:
        report["tdoa"] = tdoa
    return report


def _saturated(
    producer: Producer,
    clock: ResultListener,
    node: WorkerProcess,
    redis_pid: int | None,
    jobs: list[IQJob],
    timeout_s: float,
) -> tuple[dict, list]:
    """All ``jobs`` submitted at once: jobs/s from the first submission to the last result,
    latency, and CPU ms per job of each process over the run."""
    raw = [with_payloads(j) for j in jobs]
    processes_cpu = _cpu_processes(node, redis_pid)
    cpu_before = {name: _cpu_s(pids) for name, pids in processes_cpu.items()}
    started = time.time()
    handles = producer.submit_many([j for j, _ in raw], [p for _, p in raw])
    submitted_s = time.time() - started
    ids = {h.job_id for h in handles}
    wait_for(clock, ids, timeout_s, f"saturated, {jobs[0].priority}")
    finished = max(t for j, (t, _) in clock.received.items() if j in ids)
    report = {
        "priority": jobs[0].priority,
        "cpu_ms_per_job": {
            name: (_cpu_s(pids) - cpu_before[name]) * 1e3 / len(jobs)
            for name, pids in processes_cpu.items()
        },
        "jobs": len(jobs),
        "results": len(ids & clock.received.keys()),
        "seconds": finished - started,
        "submit_seconds": submitted_s,
        "jobs_per_s": len(jobs) / (finished - started),
        "latency_ms": _percentiles(
            [
                (clock.received[h.job_id][0] - h.submitted_s) * 1e3
                for h in handles
                if h.job_id in clock.received
            ]
        ),
    }
    return report, handles


def _cpu_processes(node: WorkerProcess, redis_pid: int | None) -> dict[str, list[int]]:
    """The processes whose CPU time the bench reports, by role."""
    roles = {
        "producer + result reader (bench process)": [os.getpid()],
        "worker main process": [node.process.pid],
        "worker children": node.child_pids(),
    }
    if redis_pid is not None:
        roles["redis-server"] = [redis_pid]
    return roles


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (``/proc/PID/stat``; gone pids count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _tdoa_through_fleet(producer: Producer, clock: ResultListener, timeout_s: float) -> dict:
    """The TDoA cases one job at a time through the idle fleet (IQ by blobs): submit→result
    latency and the worker's own time per job."""
    rows = {}
    for key, jobs in tdoa_jobs(repeats=2).items():
        latency, worker, status = [], [], "ok"
        for job, _truth in jobs:
            handle = producer.submit(job)
            wait_for(clock, {handle.job_id}, timeout_s, f"tdoa {key}")
            received_s, result = clock.received[handle.job_id][0], clock.result(handle.job_id)
            latency.append((received_s - handle.submitted_s) * 1e3)
            worker.append(result.timings_ms.total or 0.0)
            if result.status != "ok":
                status = result.error.code.value
        rows[key] = {
            "status": status,
            "latency_ms": statistics.median(latency),
            "worker_ms": statistics.median(worker),
        }
    return rows


def _open_loop(
    producer: Producer,
    clock: ResultListener,
    jobs: list[IQJob],
    rate_per_s: float,
    timeout_s: float,
) -> dict:
    interval_s = 1.0 / rate_per_s
    sent: dict[str, float] = {}
    raw = [with_payloads(j) for j in jobs]
    start = time.perf_counter()
    progress = Progress(len(jobs), f"half load ({rate_per_s:.1f} jobs/s)")
    for i, (job, payloads) in enumerate(raw):
        delay = start + i * interval_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        handle = producer.submit(job, payloads)
        sent[handle.job_id] = handle.submitted_s
        progress.update(i + 1)
    wait_for(clock, set(sent), timeout_s, "half-load results")
    latencies = [(clock.received[j][0] - t) * 1e3 for j, t in sent.items() if j in clock.received]
    return {
        "rate_per_s": rate_per_s,
        "jobs": len(jobs),
        "results": len(latencies),
        "latency_ms": _percentiles(latencies),
    }


def _audit(producer: Producer, settings: Settings, job_ids: list[str], clock) -> dict:
    """Lost, duplicated and failed jobs: from the backend, the stream and the computation count."""
    r = producer.redis
    computed = r.mget([settings.job_key(j, "attempts") for j in job_ids])
    counts = [int(c or 0) for c in computed]
    streamed: dict[str, int] = {}
    for _, result in ResultFeed(settings).read_stream("0-0"):
        streamed[result.job_id] = streamed.get(result.job_id, 0) + 1
    in_backend = sum(producer.app.AsyncResult(j).ready() for j in job_ids)
    return {
        "submitted": len(job_ids),
        "distinct_results_pubsub": len(set(job_ids) & clock.received.keys()),
        "results_in_backend": in_backend,
        "results_in_stream": sum(1 for j in job_ids if j in streamed),
        "lost": len(job_ids) - in_backend,
        "computed_twice_or_more": sum(c > 1 for c in counts),
        "never_computed": sum(c == 0 for c in counts),
        "stream_duplicates": sum(streamed.get(j, 0) > 1 for j in job_ids),
        "failed": sum(clock.result(j).status != "ok" for j in job_ids if j in clock.received),
    }


def _stage_medians(results: list) -> dict:
    stages = {}
    for key in ("queue", "fetch", "features", "inference", "total"):
        values = [
            getattr(r.timings_ms, key) for r in results if getattr(r.timings_ms, key) is not None
        ]
        stages[key] = statistics.median(values) if values else None
    return stages
