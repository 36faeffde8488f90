"""``heimdall submit``: simulated jobs or the jobs of a JSON-lines file to the fleet; with
``--wait``, their results as a table or JSON lines."""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from heimdall.cli.options import (
    DATATYPES,
    JSON_HELP,
    METHODS,
    NETWORKS,
    PRIORITIES,
    SIM_KINDS,
    read_jobs_file,
)
from heimdall.harness.console import Progress, plural


def add_parser(sub) -> None:
    p = sub.add_parser("submit", help="submit simulated jobs, or jobs from a JSON-lines file")
    source = p.add_mutually_exclusive_group(required=True)  # bare `submit` sends nothing
    source.add_argument(
        "jobs_file",
        nargs="?",
        metavar="JOBS.jsonl",
        help="JSON lines (heimdall simulate output or jobs), as localize takes",
    )
    source.add_argument("--file", help="the same, as an option")
    source.add_argument("--simulate", type=int, metavar="N", help="N simulated jobs")
    p.add_argument(
        "--kind",
        default="rss",
        choices=SIM_KINDS,
        help="with --simulate: rss (2 m band, power) or tdoa (GNSS-timed receivers)",
    )
    p.add_argument(
        "--network",
        default="reference",
        choices=NETWORKS,
        help="with --simulate: the receiver network (hf: with --kind tdoa)",
    )
    p.add_argument("--seed", type=int, default=None, help="simulator seed (default: random)")
    p.add_argument(
        "--datatype", default="cf32_le", choices=DATATYPES, help="IQ sample type of simulated jobs"
    )
    p.add_argument(
        "--priority", default="interactive", choices=PRIORITIES, help="queue of the jobs"
    )
    p.add_argument("--model", default="default", help="model version (default: the fleet's)")
    p.add_argument(
        "--method",
        default=None,
        choices=METHODS,
        help="localize by this method (default: each job's own, auto when simulated)",
    )
    p.add_argument("--inline", action="store_true", help="send IQ inline (iq_b64), no blobs")
    p.add_argument(
        "--batch",
        action="store_true",
        help="one batch (prints its id; invalid jobs of a --file are sent and fail in it)",
    )
    p.add_argument("--wait", action="store_true", help="wait and show the results")
    p.add_argument("--json", action="store_true", help=f"with --wait: {JSON_HELP}")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per result with --wait")
    p.add_argument(
        "--repeat-every",
        type=float,
        default=None,
        metavar="S",
        help="submit a new batch every S seconds until stopped",
    )
    p.set_defaults(func=cmd_submit)


def cmd_submit(args: argparse.Namespace) -> int:
    from heimdall.client import Producer

    args.file = args.file or args.jobs_file
    if args.json and not args.wait:
        print("heimdall submit: --json shows results, so it needs --wait", file=sys.stderr)
        return 2

    producer = Producer()
    while True:
        code = _submit_once(args, producer)
        if code or not args.repeat_every:
            return code
        time.sleep(args.repeat_every)


def _submit_once(args: argparse.Namespace, producer) -> int:
    from pydantic import ValidationError

    from heimdall.schemas import IQJob

    jobs, truths = [], []
    overrides = {"priority": args.priority, "model": args.model}
    if args.method:
        overrides["method"] = args.method
    if args.file:
        for i, (raw, truth) in enumerate(read_jobs_file(args.file)):
            try:
                jobs.append(IQJob.model_validate({**raw, **overrides}))
            except ValidationError as exc:
                from heimdall.inference.failures import validation_message

                print(f"{args.file}: job {i + 1}: {validation_message(exc)}", file=sys.stderr)
                if not args.batch:
                    return 2
                jobs.append(raw)  # sent as it is: it fails in the batch, with its code
            truths.append(truth)
    else:
        from heimdall.sim.jobs import simulated_jobs

        try:
            made = simulated_jobs(args.kind, args.network, args.simulate, args.seed, args.datatype)
        except ValueError as exc:
            print(f"heimdall submit: {exc}", file=sys.stderr)
            return 2
        progress = Progress(args.simulate, "simulate")
        for i, (job, truth) in enumerate(made):
            # fresh ids: a rerun is new jobs, not answered from the last run's results
            fields = {**job.model_dump(mode="json", by_alias=True), **overrides}
            try:
                jobs.append(IQJob.model_validate({**fields, "job_id": str(uuid.uuid4())}))
            except ValidationError as exc:
                from heimdall.inference.failures import validation_message

                print(f"heimdall submit: {validation_message(exc)}", file=sys.stderr)
                return 2
            truths.append((truth["lat"], truth["lon"]))
            progress.update(i + 1)
    if args.batch:
        batch = producer.submit_batch(jobs, inline=args.inline)
        handles = batch.handles
        print(f"batch {batch.batch_id}: `heimdall batch show {batch.batch_id}`", file=sys.stderr)
    else:
        handles = producer.submit_many(jobs, inline=args.inline)
    queues = sorted({h.queue for h in handles})
    print(f"submitted {plural(len(handles), 'job')} to {queues}", file=sys.stderr, flush=True)
    if not args.wait:
        for h in handles:
            print(h.job_id)
        return 0
    from heimdall.harness.result_table import show_results

    code = show_results(handles, truths, args.timeout, args.json)
    if args.batch:
        from heimdall.cli.lifecycle import batch_table

        print(batch_table(batch.batch_id, batch.record() or {}), file=sys.stderr)
    return code
