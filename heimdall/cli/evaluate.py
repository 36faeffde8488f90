"""``heimdall eval``: the model against the RSS baseline, or a method on the TDoA simulator."""

from __future__ import annotations

import argparse
import sys

from heimdall.cli.options import (
    METHODS,
    NETWORKS,
    SIGNALS,
    TDOA_NETWORKS,
    model_dir,
    positive_int,
)

TIME_ONLY_OPTIONS = ("signal", "multipath", "samples")  # attributes only --method uses


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="model vs RSS baseline on held-out simulated jobs")
    p.add_argument("--model", default=None, help="model version (default: HEIMDALL_DEFAULT_MODEL)")
    p.add_argument("--jobs", type=int, default=2000, help="simulated jobs per network")
    p.add_argument(
        "--seed", type=int, default=777_001, help="simulator seed (never a training seed)"
    )
    p.add_argument(
        "--network",
        nargs="+",
        default=None,
        choices=NETWORKS,
        help="default: reference (RSS eval); reference random hf (with --method)",
    )
    p.add_argument("--record", action="store_true", help="write the figures into the manifest")
    p.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="evaluate on the TDoA simulator (GNSS-timed receivers, σ 50 ns) with this method",
    )
    p.add_argument(
        "--signal",
        nargs="+",
        default=None,
        choices=SIGNALS,
        help="with --method: the signal families (default: all)",
    )
    p.add_argument(
        "--multipath",
        choices=["echo", "none"],
        default=None,
        help="with --method: one echo per receiver (default: echo) or none (the CRLB's own model)",
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        help="with --method: every capture this many samples long (default 10 000–50 000; "
        "360000 = 30 s at HF/LF's 12 kHz, as KiwiSDR sets come)",
    )
    p.set_defaults(func=cmd_eval)


def misplaced_option(args: argparse.Namespace) -> str | None:
    """Why the options cannot go together, or None: an option the chosen eval would ignore is
    refused rather than silently dropped (a figure measured without what was asked for)."""
    if args.method and args.record:
        return "--record writes the RSS eval's figures into the manifest; it takes no --method"
    if args.method:
        return None
    given = [f"--{name}" for name in TIME_ONLY_OPTIONS if getattr(args, name) is not None]
    if given:
        return f"{' '.join(given)}: only with --method (they shape the TDoA simulator's jobs)"
    return None


def cmd_eval(args: argparse.Namespace) -> int:
    from heimdall.measure.evaluation import evaluate, record_metrics, summary_table

    problem = misplaced_option(args)
    if problem:
        print(f"heimdall eval: {problem}", file=sys.stderr)
        return 2
    directory = model_dir(args.model)
    if args.method:
        from heimdall.measure.time_eval import evaluate_time, time_table

        networks = args.network or list(TDOA_NETWORKS)
        rows = evaluate_time(
            directory, args.method, networks, args.signal or list(SIGNALS), args.jobs,
            args.seed, multipath=args.multipath != "none", num_samples=args.samples,
        )  # fmt: skip
        print(time_table(rows))
        return 0
    for network in args.network or ["reference"]:
        summary = evaluate(directory, args.jobs, args.seed, network)
        print(summary_table(summary))
        print()
        if args.record:
            record_metrics(directory, summary)
    return 0
