"""``heimdall memory``: peak memory of a worker child on one large job."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("memory", help="peak memory of a worker child on one large job")
    p.add_argument("--receivers", type=int, default=16, help="captures in the job")
    p.add_argument("--samples", type=int, default=2_000_000, help="cf32 samples per receiver")
    p.add_argument("--max-job-samples", type=int, default=None, help="HEIMDALL_MAX_JOB_SAMPLES")
    p.add_argument("--timed", action="store_true", help="GNSS-timed captures: a TDoA job")
    p.set_defaults(func=cmd_memory)


def cmd_memory(args: argparse.Namespace) -> int:
    """Peak RSS of one worker child running one large job (private Redis, one node)."""
    from heimdall.measure.memory import measure

    report = measure(args.receivers, args.samples, args.max_job_samples, timed=args.timed)
    print(report.table())
    return 0 if report.status == "ok" else 1
