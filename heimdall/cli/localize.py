"""``heimdall localize``: jobs of a JSON-lines file localized in this process (no fleet)."""

from __future__ import annotations

import argparse
import sys

from heimdall.cli.options import JSON_HELP, METHODS, model_dir, read_jobs_file
from heimdall.harness.console import format_table


def add_parser(sub) -> None:
    p = sub.add_parser("localize", help="localize jobs from a JSON-lines file, in process")
    p.add_argument(
        "jobs_file", metavar="JOBS.jsonl", help="JSON lines (heimdall simulate output or jobs)"
    )
    p.add_argument("--model", default=None, help="model version (default: HEIMDALL_DEFAULT_MODEL)")
    p.add_argument(
        "--method",
        default=None,
        choices=METHODS,
        help="localize every job by this method (default: each job's own)",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_localize)


def cmd_localize(args: argparse.Namespace) -> int:
    """Localize jobs from a JSON-lines file (``heimdall simulate`` output or bare jobs). Exit 0
    when every job got a position, 1 when any job failed (its code in the table), 2 for a file
    that cannot be read."""
    from heimdall.harness.result_table import RESULT_HEADERS, result_row
    from heimdall.inference import Localizer

    localizer = Localizer(model_dir(args.model))
    rows, failed = [], 0
    for job, truth in read_jobs_file(args.jobs_file):
        if args.method and isinstance(job, dict):
            job = {**job, "method": args.method}
        result = localizer.localize(job)
        failed += result.status != "ok"
        if args.json:
            print(result.to_json(), flush=True)
        rows.append(result_row(result, truth))
    if not args.json:
        print(format_table(RESULT_HEADERS, rows))
    if failed:
        print(f"heimdall localize: {failed} of {len(rows)} jobs failed", file=sys.stderr)
    return 1 if failed else 0
