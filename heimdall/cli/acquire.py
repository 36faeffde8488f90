"""``heimdall acquire kiwi``: record live from KiwiSDR receivers over one GNSS window, write the
files ``heimdall ingest kiwi`` reads, and (``--submit``) send the set to the fleet."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from heimdall.cli.ingest import _job_options, job_fields
from heimdall.harness.console import format_table, plural

CAPTURE_HEADERS = [
    "receiver", "address", "firmware", "rate Hz", "recorded s", "GNSS age s", "position",
    "outcome",
]  # fmt: skip
MAX_BACKOFF_S = 3600.0


def add_parser(sub) -> None:
    p = sub.add_parser("acquire", help="record live from network receivers (KiwiSDR) → jobs")
    kinds = p.add_subparsers(dest="kind", required=True)
    k = kinds.add_parser(
        "kiwi",
        help="record IQ from KiwiSDR receivers over one GNSS window; write kiwirecorder files "
        "and/or submit the set",
    )
    k.add_argument(
        "receivers", nargs="*", metavar="HOST[:PORT][=NAME]", help="the receivers (port 8073)"
    )
    k.add_argument("--freq-khz", type=float, required=True, help="tuning, kHz (10–30 000)")
    k.add_argument("--seconds", type=float, default=20.0, help="GNSS window to record, s")
    k.add_argument("--out", default=None, metavar="DIR", help="folder for the files (default: "
                   "./kiwi-<UTC time>)")  # fmt: skip
    k.add_argument("--user", default="heimdall", help="the name receivers show for us "
                   "(kiwirecorder -u)")  # fmt: skip
    k.add_argument("--password", default="", help="the receivers' password, if they need one")
    k.add_argument("--gain-db", type=int, default=50, help="fixed RF gain (AGC off)")
    k.add_argument(
        "--station", action="append", default=[], metavar="NAME=LAT,LON",
        help="a receiver's position, wins over what it reports (repeatable)",
    )  # fmt: skip
    k.add_argument("--every", type=float, default=None, metavar="S", help="repeat every S s")
    k.add_argument("--rounds", type=int, default=None, help="with --every: stop after N rounds")
    k.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="a receiver that has not answered / streamed by then is left out",
    )
    k.add_argument("--stall-timeout", type=float, default=5.0, metavar="S",
                   help="a stream silent this long mid-capture is left out")  # fmt: skip
    pick = k.add_argument_group("choosing receivers")
    pick.add_argument(
        "--candidates",
        metavar="FILE",
        help="HOST[:PORT][=NAME] per line (# comments): probe them, record --pick",
    )
    pick.add_argument("--pick", type=int, default=None, metavar="N", help="record the N best")
    pick.add_argument(
        "--near",
        metavar="LAT,LON",
        help="where the transmitter is expected (geometry: receivers around it)",
    )
    _job_options(k)
    k.add_argument("--submit", action="store_true", help="send each recorded set to the fleet")
    k.add_argument("--wait", action="store_true", help="with --submit: wait for the results")
    k.add_argument("--json", action="store_true", help="with --wait: results as JSON lines")
    k.add_argument("--timeout", type=float, default=120.0, help="seconds per result with --wait")
    k.set_defaults(func=cmd_acquire)


def cmd_acquire(args: argparse.Namespace) -> int:
    """One capture (or one per ``--every`` round): a table of the receivers, then the job."""
    from heimdall.acquire.receiver import parse_receiver
    from heimdall.acquire.session import Tuning

    problem = _check(args)
    if problem:
        print(f"heimdall acquire: {problem}", file=sys.stderr)
        return 2
    try:
        receivers = [parse_receiver(r) for r in args.receivers]
        stations = _stations(args.station)
    except ValueError as exc:
        print(f"heimdall acquire: {exc}", file=sys.stderr)
        return 2
    if args.candidates:
        receivers = _choose(args)
        if receivers is None:
            return 1
    if len({r.name for r in receivers}) != len(receivers):
        print("heimdall acquire: two receivers share a name; give each its own =NAME",
              file=sys.stderr)  # fmt: skip
        return 2
    tuning = Tuning(
        args.freq_khz, args.user, args.password, args.gain_db, args.connect_timeout,
        args.stall_timeout,
    )  # fmt: skip
    out = Path(args.out or time.strftime("kiwi-%Y%m%dT%H%M%SZ", time.gmtime()))
    try:
        return _rounds(args, receivers, tuning, stations, out)
    except KeyboardInterrupt:  # between rounds: nothing open
        print("\nstopped (Ctrl-C)", file=sys.stderr)
        return 130


def _check(args: argparse.Namespace) -> str | None:
    if not 10.0 <= args.freq_khz <= 32_000.0:
        return f"--freq-khz {args.freq_khz:g}: a KiwiSDR tunes 10 kHz to 30 MHz"
    if not 0 < args.seconds <= 600:
        return f"--seconds {args.seconds:g}: give 0 < S ≤ 600 (be a good guest: short captures)"
    if args.every is not None and args.every < args.seconds:
        return f"--every {args.every:g} is shorter than --seconds {args.seconds:g}"
    if (args.wait or args.json) and not args.submit:
        return "--wait and --json show the fleet's results: add --submit"
    if not args.receivers and not args.candidates:
        return "name the receivers (HOST[:PORT][=NAME] …) or give --candidates FILE --pick N"
    if args.candidates and not args.pick:
        return "--candidates needs --pick N (how many to record)"
    return None


def _stations(texts: list[str]) -> dict[str, tuple[float, float]]:
    from heimdall.ingest.kiwi import parse_station

    table = {}
    for text in texts:
        name, (lat, lon, _) = parse_station(text)
        table[name] = (lat, lon)
    return table


def _rounds(args, receivers, tuning, stations, out: Path) -> int:
    """One capture, or one per ``--every`` round; receivers that failed for a passing reason
    come back after a growing pause, the others never in this run."""
    rounds = 1 if args.every is None else args.rounds
    resume_at: dict[str, float] = {}  # name → monotonic time it may be asked again
    pauses: dict[str, float] = {}
    code, n = 0, 0
    while rounds is None or n < rounds:
        n += 1
        begun = time.monotonic()
        now_receivers = [r for r in receivers if resume_at.get(r.name, 0.0) <= begun]
        directory = out if args.every is None else out / f"round-{n:03d}"
        if args.every is not None:
            print(f"\nround {n}: {plural(len(now_receivers), 'receiver')}", file=sys.stderr,
                  flush=True)  # fmt: skip
        stream = sys.stderr if args.json else sys.stdout
        try:
            result = asyncio.run(_capture(args, now_receivers, tuning, stations, directory))
        except KeyboardInterrupt:
            print("\nstopped (Ctrl-C): every file closed and valid as far as it got",
                  file=sys.stderr)  # fmt: skip
            show_capture(directory, stream)
            return 130
        show_capture(directory, stream)
        for o in result.outcomes:
            if o.ok:
                pauses.pop(o.receiver.name, None)
            elif o.failure.retry_later and args.every is not None:
                pause = min(2 * pauses.get(o.receiver.name, args.every / 2), MAX_BACKOFF_S)
                pauses[o.receiver.name] = pause
                resume_at[o.receiver.name] = begun + pause
            else:
                resume_at[o.receiver.name] = float("inf")
        code = max(code, _deliver(args, result))
        if rounds is not None and n >= rounds:
            break
        time.sleep(max(0.0, begun + args.every - time.monotonic()))
    return code


async def _capture(args, receivers, tuning, stations, directory: Path):
    from heimdall.acquire.capture import capture

    return await capture(
        receivers, tuning, args.seconds, directory, stations, on_progress=_progress_line
    )


def _progress_line(sessions) -> None:
    parts = []
    for s in sessions:
        p = s.progress
        age = "" if p.gnss_age_s is None else f" GNSS {p.gnss_age_s} s"
        parts.append(f"{s.receiver.name} {p.state} {p.recorded_s:.0f} s{age}")
    print("  " + " | ".join(parts), file=sys.stderr, flush=True)


def show_capture(directory: Path, stream) -> None:
    """The capture's receivers as a table, from its ``acquire.json`` (written however the
    capture ended)."""
    import json

    from heimdall.acquire.capture import MANIFEST

    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return
    rows = []
    for r in manifest["receivers"]:
        where = f"{r['position'][0]:.4f}, {r['position'][1]:.4f}" if r["position"] else ""
        rate = "" if r["sample_rate_hz"] is None else f"{r['sample_rate_hz']:.3f}"
        outcome = r["status"] if r["reason"] is None else f"left out ({r['status']}): {r['reason']}"
        age = "" if r["gnss_age_s"] is None else r["gnss_age_s"]
        rows.append([r["name"], f"{r['host']}:{r['port']}", r["firmware"], rate,
                     f"{r['recorded_s']:.1f}", age, where, outcome])  # fmt: skip
    print(format_table(CAPTURE_HEADERS, rows), file=stream, flush=True)
    print(f"files in {directory} (acquire.json: what became of each receiver)",
          file=stream, flush=True)  # fmt: skip


def _deliver(args, result) -> int:
    if result.refusal:
        print(f"refused: {result.refusal}", file=sys.stderr, flush=True)
        return 1
    if not args.submit:
        print(f"next: heimdall ingest kiwi {result.directory}/*.wav --submit --wait", flush=True)
        return 0
    from heimdall.cli.ingest import read_sets, show, submit_jobs
    from heimdall.ingest import IngestError, assemble

    jobs = []
    for item in read_sets("kiwi", [str(p) for p in result.files], {}):
        try:
            if isinstance(item, IngestError):
                raise item
            made = assemble(item, **job_fields(args))
            show(made, item, sys.stderr if args.json else sys.stdout)
            jobs.append(made.job)
        except IngestError as exc:
            print(f"refused: {exc}", file=sys.stderr)
    if not jobs:
        return 1
    return submit_jobs(jobs, args.wait, args.timeout, args.json)


def _choose(args):
    from heimdall.acquire.choice import choose, read_candidates

    try:
        candidates = read_candidates(Path(args.candidates))
        near = None
        if args.near:
            lat, lon = (float(v) for v in args.near.split(","))
            near = (lat, lon)
    except (OSError, ValueError) as exc:
        print(f"heimdall acquire: {exc}", file=sys.stderr)
        return None
    from heimdall.acquire.receiver import version_text

    picked, probes = asyncio.run(choose(candidates, args.freq_khz, args.pick, near, args.password))
    rows = [
        [p.receiver.name, f"{p.receiver.host}:{p.receiver.port}",
         "" if p.snr_db is None else f"{p.snr_db:.1f}",
         version_text(p.status.version if p.status else None),
         "" if p.status is None or p.status.free_channels is None else p.status.free_channels,
         p.verdict]
        for p in probes
    ]  # fmt: skip
    print(format_table(["candidate", "address", "SNR dB", "firmware", "free", "verdict"], rows))
    if len(picked) < 3:
        print(f"heimdall acquire: only {len(picked)} usable candidate(s); need 3", file=sys.stderr)
        return None
    return picked
