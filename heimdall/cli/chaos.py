"""``heimdall chaos``: jobs under SIGKILLs, a warm stop and a Redis restart, then an audit of
every result."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "chaos", help="jobs under SIGKILLs and a Redis restart, then an audit of every result"
    )
    p.add_argument("--jobs", type=int, default=1000, help="jobs submitted under chaos")
    p.add_argument("--rate", type=float, default=8.0, help="jobs per second")
    p.add_argument("--nodes", type=int, default=2, help="worker nodes")
    p.add_argument("--concurrency", type=int, default=1, help="children per node")
    p.add_argument(
        "--kill-child-every",
        type=float,
        default=3.0,
        metavar="S",
        help="SIGKILL a busy child every S seconds",
    )
    p.add_argument("--seed", type=int, default=20261127, help="seed of the jobs and of the chaos")
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    """The chaos run with its audit table; exit 1 if any job was lost or published twice."""
    from heimdall.measure.chaos import ChaosPlan, ChaosRun

    plan = ChaosPlan(
        jobs=args.jobs,
        rate_per_s=args.rate,
        nodes=args.nodes,
        concurrency=args.concurrency,
        kill_child_every_s=args.kill_child_every,
        seed=args.seed,
    )
    audit = ChaosRun(plan).run()
    print(audit.table())
    for job_id, where in audit.whereabouts.items():
        print(f"lost {job_id}: {where}")
    print(f"worker logs: {audit.log_dir}")
    return 0 if audit.passed else 1
