"""``heimdall bench``: compute limit vs fleet throughput, latency at half load, cost scaling.

Standard job (DESIGN §9): the 7-station reference network, 10 000 cf32 samples per receiver
at 50 kHz. *Compute limit*: in-process Localizers on P processes, no Redis. *Fleet*: one
worker node of P prefork children behind Redis, a producer and a pub/sub reader on the same
machine (they share its cores; that is part of what the fleet costs here).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from heimdall.config import get_settings
from heimdall.harness.console import format_table
from heimdall.harness.fleet import LocalFleet
from heimdall.measure.compute import compute_limit, feature_cost, scaling, standard_jobs, tdoa_cost
from heimdall.measure.fleetrun import fleet


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
