"""``heimdall ingest sigmf|kiwi|watch``: real recordings → jobs, a table of what was read.

Without ``--out`` or ``--submit`` it only shows what it would make of the files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from heimdall.cli.options import METHODS, PRIORITIES
from heimdall.harness.console import format_table, plural
from heimdall.ingest import Assembled, IngestError, RecordingSet, assemble
from heimdall.ingest.timestamps import ns_to_rfc3339

MIN_RECEIVERS = 3  # the Localizer's minimum (heimdall.inference.localizer.MIN_RECEIVERS)
RECEIVER_HEADERS = [
    "receiver", "lat", "lon", "MHz", "rate Hz", "samples", "s", "first sample (UTC)",
    "clock", "σ ns",
]  # fmt: skip


def add_parser(sub) -> None:
    p = sub.add_parser("ingest", help="recordings (SigMF, KiwiSDR IQ WAV) → jobs; a drop folder")
    kinds = p.add_subparsers(dest="kind", required=True)

    s = kinds.add_parser("sigmf", help="SigMF recordings/archives/collections → jobs")
    s.add_argument(
        "paths", nargs="+", metavar="PATH", help="recordings, archives, collections or folders"
    )
    _station_options(s, positions=False)
    _output_options(s)
    s.set_defaults(func=cmd_ingest)

    k = kinds.add_parser("kiwi", help="kiwirecorder --kiwi-wav IQ files → GNSS-timed jobs")
    k.add_argument(
        "paths", nargs="+", metavar="WAV", help="kiwirecorder IQ WAV files of one or more sets"
    )
    _station_options(k, positions=True)
    _output_options(k)
    k.set_defaults(func=cmd_ingest)

    w = kinds.add_parser("watch", help="submit each recording set dropped into DIR once")
    w.add_argument("directory", metavar="DIR", help="the folder to watch")
    _station_options(w, positions=True)
    _job_options(w)
    w.add_argument(
        "--settle",
        type=float,
        default=3.0,
        metavar="S",
        help="a set is complete when its files have not changed for S seconds",
    )
    w.add_argument("--interval", type=float, default=1.0, metavar="S", help="poll period")
    w.add_argument(
        "--once",
        action="store_true",
        help=f"handle what is there now, wait for its results (up to {ONCE_RESULTS_S:.0f} s), exit",
    )
    w.set_defaults(func=cmd_watch)  # fmt: skip


def _station_options(p: argparse.ArgumentParser, positions: bool) -> None:
    help_text = (
        "a station's position (repeatable); wins over gnss_pos files"
        if positions
        else "a receiver's position where its metadata has no core:geolocation (repeatable)"
    )
    p.add_argument(
        "--station", action="append", default=[], metavar="NAME=LAT,LON[,ALT]", help=help_text
    )
    if positions:
        p.add_argument(
            "--positions",
            action="append",
            default=[],
            metavar="DIR_OR_FILE",
            help="kiwirecorder gnss_pos/NAME.txt files (default: beside the WAVs)",
        )


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="model version for the RSS network")
    p.add_argument(
        "--priority", default="interactive", choices=PRIORITIES, help="queue of the jobs"
    )
    p.add_argument(
        "--method",
        default="auto",
        choices=METHODS,
        help="how to localize (auto: by what the job allows)",
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    _job_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="JOBS.jsonl", help="write one job per line")
    where.add_argument("--submit", action="store_true", help="send the jobs to the fleet")
    p.add_argument("--wait", action="store_true", help="with --submit: wait for the results")
    p.add_argument("--json", action="store_true", help="with --wait: results as JSON lines")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per result with --wait")


def stations_of(args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """``--station`` values (and ``--positions`` files) as name → (lat, lon, alt); a bad one
    ends the command with a message naming it (exit code 2)."""
    from heimdall.ingest.kiwi import parse_station, read_positions

    try:
        table = read_positions([Path(p) for p in getattr(args, "positions", [])])
        for text in args.station:
            name, position = parse_station(text)
            table[name] = position
    except (ValueError, IngestError) as exc:
        print(f"heimdall ingest: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return table


def job_fields(args: argparse.Namespace) -> dict[str, str]:
    return {"model": args.model, "priority": args.priority, "method": args.method}


def read_sets(kind: str, paths: list[str], stations: dict) -> list[RecordingSet | IngestError]:
    """The recording sets (or refusals) of ``paths`` read as ``kind``."""
    if kind == "kiwi":
        from heimdall.ingest import kiwi

        return kiwi.read_sets([Path(p) for p in paths], stations)
    from heimdall.ingest import sigmf

    return sigmf.read_sets(paths, stations)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Read, assemble and show every set; write or submit the jobs."""
    if (args.wait or args.json) and not args.submit:
        print("heimdall ingest: --wait and --json show the fleet's results: add --submit",
              file=sys.stderr)  # fmt: skip
        return 2
    stations, fields = stations_of(args), job_fields(args)
    made: list[Assembled] = []
    refused = 0
    for item in read_sets(args.kind, args.paths, stations):
        try:
            if isinstance(item, IngestError):
                raise item
            made.append(assemble(item, **fields))
            refused += len(item.refused)
            show(made[-1], item, sys.stderr if args.json else sys.stdout)
        except IngestError as exc:
            refused += 1
            print(f"refused: {exc}", file=sys.stderr)
    if not made:
        print("heimdall ingest: no job could be made", file=sys.stderr)
        return 2
    code = _deliver(args, made)
    return code or (1 if refused else 0)


def _deliver(args: argparse.Namespace, made: list[Assembled]) -> int:
    if args.out:
        with open(args.out, "w") as fh:
            for a in made:
                fh.write(a.job.to_json() + "\n")
        print(f"wrote {plural(len(made), 'job')} to {args.out}", file=sys.stderr)
        return 0
    if not args.submit:
        print("(nothing written: give --out FILE or --submit)", file=sys.stderr)
        return 0
    return submit_jobs([a.job for a in made], args.wait, args.timeout, args.json)


def submit_jobs(jobs: list, wait: bool, timeout_s: float, as_json: bool) -> int:
    """Send ``jobs`` to the fleet; with ``wait``, show their results as they come (a table,
    or JSON lines), else print their ids."""
    from heimdall.client import Producer
    from heimdall.harness.result_table import show_results

    handles = Producer().submit_many(jobs)
    print(f"submitted {plural(len(handles), 'job')}", file=sys.stderr, flush=True)
    if not wait:
        for h in handles:
            print(h.job_id, flush=True)
        return 0
    return show_results(handles, [None] * len(handles), timeout_s, as_json)


def show(assembled: Assembled, found: RecordingSet, stream=sys.stdout) -> None:
    """The job's receivers as a table, then what was dropped or refused and why."""
    job = assembled.job
    receivers = plural(len(job.receivers), "receiver")
    print(f"\n{found.label} → job {job.job_id} ({receivers})", file=stream)
    rows = [
        [
            c.receiver_id, f"{c.lat:.5f}", f"{c.lon:.5f}", f"{c.center_frequency_hz / 1e6:.6f}",
            f"{c.sample_rate_hz:.4f}", c.num_samples, f"{c.num_samples / c.sample_rate_hz:.3f}",
            ns_to_rfc3339(c.time_ns) if c.time_ns is not None else c.start_time.isoformat(),
            c.clock.source, "" if c.clock.uncertainty_ns is None else f"{c.clock.uncertainty_ns:g}",
        ]
        for c in job.receivers
    ]  # fmt: skip
    print(format_table(RECEIVER_HEADERS, rows), file=stream)
    for note in assembled.notes:
        print(f"  note: {note}", file=stream)
    if len(job.receivers) < MIN_RECEIVERS:
        print(f"  warning: {len(job.receivers)} receiver(s); a position needs at least "
              f"{MIN_RECEIVERS} (this job will fail with too_few_receivers) — give every "
              "receiver's recording of the emission", file=stream)  # fmt: skip
    for exc in found.refused:
        print(f"  refused: {exc}", file=stream)


def cmd_watch(args: argparse.Namespace) -> int:
    """The drop folder: submit each complete set once, move it to done/ or rejected/, and show
    each set's result as it arrives."""
    import time

    from heimdall.client import Producer, ResultListener
    from heimdall.ingest.watch import DropFolder

    stations, fields = stations_of(args), job_fields(args)
    producer = Producer()
    pending: dict[str, str] = {}  # job id → the set's label, until its result is shown

    def submit(assembled: Assembled) -> str:
        return producer.submit(assembled.job).job_id

    folder = DropFolder(Path(args.directory), submit, stations, fields, settle_s=args.settle)
    print(f"watching {folder.directory} (done/ and rejected/ inside it); Ctrl-C stops", flush=True)
    deadline = time.monotonic() + ONCE_RESULTS_S  # --once: how long to wait for the answers
    with ResultListener(producer.settings) as heard:  # up before the first submit
        try:
            while True:
                for outcome in folder.poll():
                    if outcome.status != "waiting":
                        print(outcome.line(), flush=True)
                    for job_id in (outcome.job_id or "").split(", "):
                        if outcome.status == "submitted" and job_id:
                            pending[job_id] = outcome.label
                for job_id in [j for j in pending if j in heard.received]:
                    print(answer_line(pending.pop(job_id), heard.result(job_id)), flush=True)
                # --once: until every set dropped so far was dealt with and answered (files
                # not yet settled are not "nothing to do")
                settled = not pending and not folder.holds_work()
                if args.once and (settled or time.monotonic() > deadline):
                    for job_id, label in pending.items():
                        print(f"no result yet for {label} (job {job_id}); is a worker running? "
                              "(heimdall status)", file=sys.stderr)  # fmt: skip
                    if not settled and not pending:
                        waited = f"{ONCE_RESULTS_S:.0f} s (still being written?)"
                        print(f"files in {folder.directory} not dealt with in {waited}",
                              file=sys.stderr)  # fmt: skip
                    return 0 if settled else 1
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


ONCE_RESULTS_S = 120.0


def answer_line(label: str, result) -> str:
    """A set's answer for people: status, method, position, 95 % ellipse (or the error)."""
    head = f"result    {label} → job {result.job_id[:8]}: {result.status}"
    if result.status != "ok":
        return f"{head} {result.error.code.value}: {result.error.message}"
    e = result.ellipse
    return (
        f"{head} ({result.method}) {result.position.lat:.5f}, {result.position.lon:.5f}; "
        f"{e.confidence:.0%} ellipse {e.semi_major_m / 1e3:.2f} × {e.semi_minor_m / 1e3:.2f} km "
        f"at {e.orientation_deg:.0f}°"
    )


def write_job_sigmf(job, truth: dict, directory: Path) -> Path:
    """A simulated job as a SigMF collection (its time tags and clocks; truth in the
    collection). Jobs without time tags (the RSS simulator's) are stamped from ``start_time``
    as ``ntp`` ±1 ms: that simulator starts every receiver at one instant and models no time
    of flight, so its stamps are not GNSS-grade."""
    from heimdall.ingest.sigmf import write_collection
    from heimdall.schemas.job import Clock, datetime_to_ns

    recordings = [
        {
            "receiver_id": r.receiver_id, "lat": r.lat, "lon": r.lon, "alt_m": r.alt_m,
            "sample_rate_hz": r.sample_rate_hz, "center_frequency_hz": r.center_frequency_hz,
            "time_ns": r.time_ns if r.time_ns is not None else datetime_to_ns(r.start_time),
            "clock": r.clock if r.time_ns is not None else Clock(source="ntp", uncertainty_ns=1e6),
            "datatype": r.datatype, "iq": r.inline_bytes(),
        }
        for r in job.receivers
    ]  # fmt: skip
    return write_collection(
        directory,
        job.job_id,
        recordings,
        {"core:description": "heimdall simulate", "heimdall:truth": json.loads(json.dumps(truth))},
    )
