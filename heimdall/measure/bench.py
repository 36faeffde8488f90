"""``heimdall bench``: compute limit vs fleet throughput, latency at half load, cost scaling.

Standard job (DESIGN §9): the 7-station reference network, 10 000 cf32 samples per receiver
at 50 kHz. *Compute limit*: in-process Localizers on P processes, no Redis. *Fleet*: one
worker node of P prefork children behind Redis, a producer and a pub/sub reader on the same
machine (they share its cores; that is part of what the fleet costs here).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from heimdall.client import Producer, ResultFeed, ResultListener
from heimdall.config import Settings, get_settings
from heimdall.harness.console import Progress, format_table
from heimdall.harness.fleet import LocalFleet
from heimdall.harness.node import WorkerProcess
from heimdall.inference.localizer import Localizer
from heimdall.schemas.job import IQJob
from heimdall.sim import ScenarioGenerator, SimConfig

_pool_jobs: list[tuple[IQJob, dict[int, bytes]]] = []
COMPUTE_PASSES = 3
_pool_localizer: Localizer | None = None


def standard_jobs(
    n: int,
    seed: int,
    receivers: int | None = None,
    num_samples: int = 10_000,
    datatype: str = "cf32_le",
) -> list[IQJob]:
    """``n`` standard jobs (fresh job ids), or ``receivers`` random stations when given; IQ
    as ``datatype`` (ci16_le: what a 16-bit source such as a KiwiSDR sends)."""
    if receivers is None:
        cfg = SimConfig(network="reference", missing_probability=0.0, num_samples=num_samples)
    else:
        cfg = SimConfig(
            network="random",
            random_receivers=(receivers, receivers),
            missing_probability=0.0,
            num_samples=num_samples,
        )
    gen = ScenarioGenerator(cfg, seed=seed)
    progress = Progress(n, "simulate")
    jobs = []
    for i in range(n):
        jobs.append(gen.next().to_job(datatype, job_id=str(uuid.uuid4())))
        progress.update(i + 1)
    return jobs


def by_reference(job: IQJob) -> tuple[IQJob, dict[int, bytes]]:
    """The job as a worker sees it after fetching blobs: ``iq_ref`` captures plus payloads."""
    job, payloads = with_payloads(job)
    receivers = [
        r.model_copy(update={"iq_ref": f"bench:{job.job_id}:{i}"})
        for i, r in enumerate(job.receivers)
    ]
    return job.model_copy(update={"receivers": receivers}), payloads


def with_payloads(job: IQJob) -> tuple[IQJob, dict[int, bytes]]:
    """The job as an ingest service holds it: captures without inline IQ, and the raw IQ
    bytes the producer writes to blobs."""
    payloads = {i: r.inline_bytes() for i, r in enumerate(job.receivers)}
    receivers = [r.model_copy(update={"iq_b64": None}) for r in job.receivers]
    return job.model_copy(update={"receivers": receivers}), payloads


def _init_pool(model_dir: str) -> None:
    global _pool_localizer
    _pool_localizer = Localizer(model_dir)


def _run_one(index: int) -> dict:
    job, payloads = _pool_jobs[index]
    r = _pool_localizer.localize(job, payloads)
    return {"status": r.status, **r.timings_ms.model_dump()}


def feature_cost(job: IQJob, model_dir: Path, repeats: int = 200) -> dict:
    """Median ms per standard job of the features (all receivers, as the Localizer computes
    them) and of the bare FFTs of the same frames (complex64, ``scipy.fft``, one thread): in
    place in a buffer kept between calls (``bare_fft_ms``, the limit features can approach),
    and into a fresh array (``bare_fft_fresh_ms``, which also pays the new array's page faults).
    """
    import scipy.fft

    from heimdall.dsp.iq import decode_iq

    localizer = Localizer(model_dir)
    pre, extractor = localizer.manifest.preprocessing, localizer.extractor
    iq = np.stack(
        [decode_iq(r.inline_bytes(), r.datatype, r.num_samples) for r in job.receivers]
    ).astype(np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(iq, pre.n_fft, axis=-1)[..., :: pre.hop, :]
    frames = np.ascontiguousarray(frames.reshape(-1, pre.n_fft))
    buffer = np.empty_like(frames)

    def features() -> float:
        started = time.perf_counter()
        extractor.capture_features(iq, pre.mean_db, pre.std_db)
        return time.perf_counter() - started

    def bare_ffts() -> float:
        np.copyto(buffer, frames)  # fresh input each time, outside the timed call
        started = time.perf_counter()
        scipy.fft.fft(buffer, axis=-1, overwrite_x=True, workers=1)
        return time.perf_counter() - started

    def fresh_ffts() -> float:
        started = time.perf_counter()
        scipy.fft.fft(frames, axis=-1, workers=1)
        return time.perf_counter() - started

    out = {}
    runs = (("features", features), ("bare_fft", bare_ffts), ("bare_fft_fresh", fresh_ffts))
    for name, run in runs:
        run()  # first call allocates the workspace
        out[f"{name}_ms"] = statistics.median(run() * 1e3 for _ in range(repeats))
    out["ratio"] = out["features_ms"] / out["bare_fft_ms"]
    out["ratio_fresh"] = out["features_ms"] / out["bare_fft_fresh_ms"]
    out["frames"] = len(frames)
    return out


def compute_limit(
    jobs: list[IQJob], processes: int, model_dir: Path, passes: int = COMPUTE_PASSES
) -> dict:
    """Jobs/s of in-process Localizers on ``processes`` processes (fork, no Redis): the median
    of ``passes`` passes over ``jobs`` (one pass of 500 jobs is about a second, and passes of
    one run differ by ±5 % on this machine)."""
    global _pool_jobs
    _pool_jobs = [by_reference(j) for j in jobs]
    rates = []
    with mp.get_context("fork").Pool(processes, _init_pool, (str(model_dir),)) as pool:
        pool.map(_run_one, range(min(len(jobs), 4 * processes)))  # warm-up
        for _ in range(passes):
            started = time.perf_counter()
            rows = pool.map(_run_one, range(len(jobs)), chunksize=4)
            rates.append(len(jobs) / (time.perf_counter() - started))
    _pool_jobs = []
    return {
        "processes": processes,
        "jobs": len(jobs),
        "jobs_per_s": statistics.median(rates),
        "jobs_per_s_passes": rates,
        "failed": sum(r["status"] != "ok" for r in rows),
        "stage_ms_median": {
            k: statistics.median(r[k] for r in rows if r[k] is not None)
            for k in ("features", "inference", "total")
        },
    }


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


def scaling(model_dir: Path, repeats: int = 5) -> dict:
    """Median in-process cost (ms) per job vs receivers and vs samples per receiver."""
    localizer = Localizer(model_dir)

    def cost(jobs: list[IQJob]) -> dict:
        runs = [localizer.localize(*by_reference(j)) for j in jobs]
        out = {"status": runs[0].status if runs[0].status == "ok" else runs[0].error.code.value}
        for key in ("features", "inference", "total"):
            values = [getattr(r.timings_ms, key) for r in runs]
            out[key] = statistics.median(values) if None not in values else None
        return out

    receivers = {
        r: cost(standard_jobs(repeats, seed=300 + r, receivers=r))
        for r in (1, 2, 3, 4, 7, 10, 13, 16)
    }
    samples = {
        n: cost(standard_jobs(repeats, seed=400, num_samples=n))
        for n in (2_000, 10_000, 50_000, 200_000)
    }
    return {"receivers": receivers, "samples": samples}


TDOA_CASES = (  # (network, receivers, seconds of IQ each)
    ("hf", 3, 1), ("hf", 3, 30), ("hf", 7, 30), ("reference", 7, 1), ("reference", 7, 10),
)  # fmt: skip


def tdoa_jobs(repeats: int) -> dict[str, list[tuple[IQJob, tuple[float, float]]]]:
    """Per TDoA case, ``repeats`` simulated NFM jobs (method tdoa) with their true position."""
    from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

    cases = {}
    for network, receivers, seconds in TDOA_CASES:
        rate = 12_001.0 if network == "hf" else 50_000.0
        n = int(seconds * rate)
        config = TdoaSimConfig(
            network=network, num_samples=(n, n), random_receivers=(receivers, receivers)
        )
        gen = TdoaScenarioGenerator(config, seed=500)
        key = f"{network}, {receivers} rx × {seconds} s @ {rate / 1000:g} kHz"
        cases[key] = [
            (sc.job.model_copy(update={"method": "tdoa"}), (sc.true_lat, sc.true_lon))
            for sc in (gen.next(kind="nfm") for _ in range(repeats))
        ]
    return cases


def tdoa_cost(model_dir: Path, repeats: int = 3) -> dict:
    """In-process TDoA jobs (NFM, GNSS-timed): median time and error per case."""
    from heimdall.harness.result_table import error_m

    localizer = Localizer(model_dir)
    rows = {}
    for key, jobs in tdoa_jobs(repeats).items():
        times, errors, status = [], [], "ok"
        for job, (lat, lon) in jobs:
            result = localizer.localize(job)
            times.append(result.timings_ms.total)
            if result.status != "ok":
                status = result.error.code.value
                continue
            errors.append(error_m(result, lat, lon))
        rows[key] = {
            "status": status,
            "pairs": len(job.receivers) * (len(job.receivers) - 1) // 2,
            "total_ms": statistics.median(times),
            "error_m": statistics.median(errors) if errors else None,
        }
    return rows


def run_bench(
    jobs: int = 500,
    processes: int = 2,
    latency_jobs: int = 200,
    rate_fraction: float = 0.5,
    use_configured_redis: bool = False,
    with_scaling: bool = True,
    out: Path | None = None,
    with_tdoa: bool = True,
) -> dict:
    base = get_settings()
    model_dir = base.models_dir / base.default_model
    standard = standard_jobs(jobs, seed=7)
    report: dict = {
        "standard_job": "reference network, 7 receivers, 10 000 cf32 samples @ 50 kHz",
        "model": base.default_model,
    }
    print(f"compute limit: {processes} in-process Localizers", flush=True)
    report["compute_limit"] = compute_limit(standard, processes, model_dir)
    standard16 = standard_jobs(jobs, seed=10, datatype="ci16_le")
    report["compute_limit_ci16"] = compute_limit(standard16, processes, model_dir)
    report["features"] = feature_cost(standard[0], model_dir)
    settings = base.model_copy(update={"key_prefix": f"bench{uuid.uuid4().hex[:6]}"})
    redis_choice = "configured-or-private" if use_configured_redis else "private"
    with LocalFleet(settings, redis_choice) as local:
        print(f"fleet: 1 worker node × {processes} children on {local.redis_note}", flush=True)
        report["fleet"] = fleet(
            local,
            standard,
            standard_jobs(jobs, seed=9),
            standard16,
            standard_jobs(latency_jobs, seed=8),
            processes,
            rate_fraction,
            with_tdoa=with_tdoa,
        )
    limit = report["compute_limit"]["jobs_per_s"]
    report["fleet_to_compute_ratio"] = report["fleet"]["saturated"]["jobs_per_s"] / limit
    report["single_to_compute_ratio"] = report["fleet"]["saturated_single"]["jobs_per_s"] / limit
    report["ci16_to_compute_ratio"] = (
        report["fleet"]["saturated_ci16"]["jobs_per_s"] / report["compute_limit_ci16"]["jobs_per_s"]
    )
    if with_scaling:
        print("scaling: in-process cost vs receivers and samples", flush=True)
        report["scaling"] = scaling(model_dir)
    if with_tdoa:
        print("tdoa: in-process time-difference jobs", flush=True)
        report["tdoa_in_process"] = tdoa_cost(model_dir)
    print(bench_tables(report))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def bench_tables(report: dict) -> str:
    c, f = report["compute_limit"], report["fleet"]
    sat, half, single = f["saturated"], f["half_load"], f.get("saturated_single")
    ci16, c16 = f.get("saturated_ci16"), report.get("compute_limit_ci16")
    parts = [
        format_table(
            ["mode", "processes", "jobs", "jobs/s", "p50 ms", "p95 ms", "p99 ms"],
            [
                [
                    "compute limit (no Redis)",
                    c["processes"],
                    c["jobs"],
                    c["jobs_per_s"],
                    "",
                    "",
                    "",
                ],
                _saturated_row("fleet, saturated, bulk (packed)", f["processes"], sat),
                *(
                    [_saturated_row("fleet, saturated, interactive", f["processes"], single)]
                    if single
                    else []
                ),
                *(
                    [
                        [
                            "compute limit, ci16 IQ",
                            c16["processes"],
                            c16["jobs"],
                            c16["jobs_per_s"],
                            "",
                            "",
                            "",
                        ],
                        _saturated_row("fleet, saturated, bulk, ci16 IQ", f["processes"], ci16),
                    ]
                    if ci16 and c16
                    else []
                ),
                [
                    f"fleet, {half['rate_per_s']:.1f} jobs/s (half load)",
                    f["processes"],
                    half["jobs"],
                    half["rate_per_s"],
                    half["latency_ms"]["p50"],
                    half["latency_ms"]["p95"],
                    half["latency_ms"]["p99"],
                ],
            ],
        )
    ]
    ratios = f"fleet / compute limit = {report['fleet_to_compute_ratio']:.3f} (bulk, packed)"
    if "single_to_compute_ratio" in report:
        ratios += f", {report['single_to_compute_ratio']:.3f} (interactive, one job per message)"
    if "ci16_to_compute_ratio" in report:
        ratios += f", {report['ci16_to_compute_ratio']:.3f} (bulk, ci16 IQ, vs its own limit)"
    parts.append(ratios)
    if "features" in report:
        feat = report["features"]
        parts.append(
            f"features {feat['features_ms']:.2f} ms / bare FFTs of the same {feat['frames']} "
            f"frames in place {feat['bare_fft_ms']:.2f} ms = {feat['ratio']:.2f}; / into a fresh "
            f"array {feat.get('bare_fft_fresh_ms', float('nan')):.2f} ms = "
            f"{feat.get('ratio_fresh', float('nan')):.2f} (per standard job)"
        )
    if "cold_start_s" in f:
        parts.append(f"cold start (node process start → first result) = {f['cold_start_s']:.2f} s")
    parts.append(
        format_table(["audit (saturated run)", "count"], [[k, v] for k, v in f["audit"].items()])
    )
    cpu = sat.get("cpu_ms_per_job")
    if cpu:
        runs = [sat] + ([single] if single else []) + ([ci16] if ci16 else [])
        rows = [[k] + [f"{r['cpu_ms_per_job'][k]:.2f}" for r in runs] for k in cpu]
        rows.append(["all"] + [f"{sum(r['cpu_ms_per_job'].values()):.2f}" for r in runs])
        head = ["CPU ms per job, saturated", "bulk"] + (["interactive"] if single else [])
        head += ["bulk, ci16"] if ci16 else []
        parts.append(format_table(head, rows))
    stage = half["stage_ms_median"]
    parts.append(
        format_table(
            ["stage (median ms, half load)", "fleet", "compute limit"],
            [
                [k, _num(stage.get(k)), _num(c["stage_ms_median"].get(k))]
                for k in ("queue", "fetch", "features", "inference", "total")
            ],
        )
    )
    if "scaling" in report:
        parts.append(_scaling_table("receivers (10 000 samples)", report["scaling"]["receivers"]))
        parts.append(_scaling_table("samples / receiver (7 rx)", report["scaling"]["samples"]))
    if "tdoa_in_process" in report:
        parts.append(
            format_table(
                ["TDoA job (in process, NFM)", "result", "pairs", "median ms", "median error m"],
                [
                    [k, v["status"], v["pairs"], _num(v["total_ms"]), _num(v["error_m"])]
                    for k, v in report["tdoa_in_process"].items()
                ],
            )
        )
    if "tdoa" in f:
        parts.append(
            format_table(
                ["TDoA job (through the fleet, NFM)", "result", "submit→result ms", "worker ms"],
                [
                    [k, v["status"], _num(v["latency_ms"]), _num(v["worker_ms"])]
                    for k, v in f["tdoa"].items()
                ],
            )
        )
    return "\n\n".join(parts)


def _saturated_row(label: str, processes: int, run: dict) -> list:
    latency = run["latency_ms"]
    return [
        label,
        processes,
        run["jobs"],
        run["jobs_per_s"],
        *(latency[k] for k in ("p50", "p95", "p99")),
    ]


def _scaling_table(first: str, rows: dict) -> str:
    headers = [first, "result", "features ms", "inference ms", "total ms"]
    return format_table(
        headers,
        [
            [k, v["status"], _num(v["features"]), _num(v["inference"]), _num(v["total"])]
            for k, v in rows.items()
        ],
    )


def _num(v) -> str:
    return "" if v is None else f"{v:.2f}"
