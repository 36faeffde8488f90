"""``heimdall simulate``: simulated jobs with their truth, as JSON lines, SigMF collections or
KiwiSDR WAV sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from heimdall.cli.options import DATATYPES, NETWORKS, SIGNALS, SIM_KINDS
from heimdall.harness.console import Progress, plural


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="write simulated jobs (with truth) as JSON lines")
    p.add_argument("--jobs", type=int, default=10, help="jobs to write")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument(
        "--network",
        default="reference",
        choices=NETWORKS,
        help="receiver network (hf: with --kind tdoa)",
    )
    p.add_argument(
        "--datatype", default="cf32_le", choices=DATATYPES, help="IQ sample type (rss jobs)"
    )
    p.add_argument(
        "--kind",
        default="rss",
        choices=SIM_KINDS,
        help="rss: the network's training simulator; tdoa: GNSS-timed receivers, time of "
        "flight, multipath, real-bandwidth signals",
    )
    p.add_argument(
        "--signal",
        nargs="+",
        default=None,
        choices=SIGNALS,
        help="tdoa: signal families to draw from (default: all)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="tdoa: capture length per receiver, s (default: 10 000–50 000 samples)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="JSON lines: one job and its truth per line")
    where.add_argument("--sigmf", metavar="DIR", help="one SigMF collection per job, time-tagged")
    where.add_argument("--kiwi", metavar="DIR", help="KiwiSDR IQ WAV sets (with --kind tdoa)")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulated jobs with their truth: JSON lines, SigMF collections or KiwiSDR WAV sets."""
    if args.kiwi and args.kind != "tdoa":
        print("heimdall simulate: --kiwi needs --kind tdoa (GNSS-timed receivers)", file=sys.stderr)
        return 2
    from heimdall.sim.jobs import simulated_jobs

    try:
        jobs = simulated_jobs(
            args.kind, args.network, args.jobs, args.seed, args.datatype, args.signal, args.seconds
        )
    except ValueError as exc:
        print(f"heimdall simulate: {exc}", file=sys.stderr)
        return 2
    progress = Progress(args.jobs, "simulate")
    fh = open(args.out, "w") if args.out else None  # noqa: SIM115 -- closed below
    try:
        for i, (job, truth) in enumerate(jobs):
            if fh is not None:
                fh.write(json.dumps({"job": json.loads(job.to_json()), "truth": truth}) + "\n")
            elif args.sigmf:
                from heimdall.cli.ingest import write_job_sigmf

                write_job_sigmf(job, truth, Path(args.sigmf))
            else:
                from heimdall.sim.kiwiwav import write_kiwi_set

                write_kiwi_set(job, Path(args.kiwi) / job.job_id, seed=i)
            progress.update(i + 1)
    finally:
        if fh is not None:
            fh.close()
    print(f"wrote {plural(args.jobs, 'simulated job')} to {args.out or args.sigmf or args.kiwi}")
    return 0
