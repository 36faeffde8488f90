"""``heimdall bench``: the compute limit against the fleet, latency at half load, scaling, TDoA."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="compute limit vs fleet, latency at half load, scaling")
    p.add_argument("--jobs", type=int, default=500, help="standard jobs per throughput run")
    p.add_argument("--processes", type=int, default=2, help="Localizer processes = children")
    p.add_argument(
        "--latency-jobs", type=int, default=200, help="interactive jobs timed at half load"
    )
    p.add_argument("--rate-fraction", type=float, default=0.5, help="of the saturated rate")
    p.add_argument(
        "--use-configured-redis",
        action="store_true",
        help="use HEIMDALL_REDIS_URL (when it answers) instead of a private redis-server",
    )
    p.add_argument(
        "--no-scaling", action="store_true", help="skip the cost-vs-receivers/samples runs"
    )
    p.add_argument(
        "--no-tdoa",
        action="store_true",
        help="skip the TDoA jobs (in process and through the fleet)",
    )
    p.add_argument("--out", default=None, help="write the figures as JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from heimdall.measure.bench import run_bench

    report = run_bench(
        jobs=args.jobs,
        processes=args.processes,
        latency_jobs=args.latency_jobs,
        rate_fraction=args.rate_fraction,
        use_configured_redis=args.use_configured_redis,
        with_scaling=not args.no_scaling,
        out=Path(args.out) if args.out else None,
        with_tdoa=not args.no_tdoa,
    )
    audit = report["fleet"]["audit"]
    return 0 if audit["lost"] == 0 and audit["computed_twice_or_more"] == 0 else 1
