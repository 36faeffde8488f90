"""``heimdall emulate kiwi``: a local KiwiSDR serving a recording (or a simulated set) over the
receivers' own websocket protocol, for tests, demos and users without receivers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from heimdall.cli.options import SIGNALS
from heimdall.harness.console import format_table


def add_parser(sub) -> None:
    p = sub.add_parser("emulate", help="a local KiwiSDR serving a recording (tests, demos)")
    kinds = p.add_subparsers(dest="kind", required=True)
    k = kinds.add_parser(
        "kiwi",
        help="serve a kiwirecorder IQ WAV (or a simulated set) as a KiwiSDR does, in real time",
    )
    source = k.add_mutually_exclusive_group(required=True)
    source.add_argument("--replay", metavar="WAV", help="a kiwirecorder --kiwi-wav IQ file")
    source.add_argument(
        "--simulate",
        action="store_true",
        help="a simulated TDoA set: one receiver per port from --port on (truth printed)",
    )
    k.add_argument("--host", default="127.0.0.1", help="address to listen on")
    k.add_argument("--port", type=int, default=8073, help="port (first port with --simulate)")
    k.add_argument(
        "--position",
        metavar="LAT,LON",
        help="the receiver's position (default: the WAV's gnss_pos/NAME.txt)",
    )
    k.add_argument("--name", help="the receiver's name (default: the station in the file name)")
    k.add_argument("--loop", action="store_true", help="start over at the end (stamps move on)")
    k.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a broadcast on a loop: each connection joins where it is now, not at the "
        "recording's start (default: on with --simulate, as live receivers' captures differ; "
        "off with --replay)",
    )
    k.add_argument("--firmware", default="1.834", metavar="MAJ.MIN", help="version it reports")
    k.add_argument("--users-max", type=int, default=4, help="channels")
    sim = k.add_argument_group("--simulate")
    sim.add_argument("--signal", default="time-signal", choices=SIGNALS, help="signal family")
    sim.add_argument("--network", default="hf", choices=("reference", "random", "hf"))
    sim.add_argument("--seconds", type=float, default=60.0, help="length of the recording")
    sim.add_argument("--seed", type=int, default=1, help="simulator seed")
    sim.add_argument("--receivers", type=int, default=None, help="serve only the first N")
    bad = k.add_argument_group("faults (what real receivers do)")
    bad.add_argument("--busy", action="store_true", help="every channel in use (too_busy)")
    bad.add_argument("--password", default=None, help="refuse any other password (badp=1)")
    bad.add_argument("--no-gnss", action="store_true", help="frames stamped without a fix (255)")
    bad.add_argument(
        "--gnss-age", type=int, default=None, metavar="S", help="every fix S s old (stale)"
    )
    bad.add_argument("--drop-after", type=float, default=None, metavar="S", help="cut the link")
    bad.add_argument(
        "--time-limit", type=float, default=None, metavar="S",
        help="end the session after S s with MSG inactivity_timeout (a time-limited receiver)",
    )  # fmt: skip
    bad.add_argument(
        "--stall-after", type=float, default=None, metavar="S", help="go silent, stay connected"
    )
    bad.add_argument(
        "--speed", type=float, default=1.0, help="stream at this × real time (< 1: it lags)"
    )
    bad.add_argument(
        "--reject-apps",
        action="store_true",
        help="close before streaming, as a v1.834 receiver whose owner limits non-Kiwi apps",
    )
    k.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from heimdall.acquire.emulator import Faults
    from heimdall.acquire.receiver import parse_version
    from heimdall.ingest import IngestError

    firmware = parse_version(args.firmware)
    if firmware is None or args.speed <= 0:
        field = "--firmware (MAJ.MIN)" if firmware is None else "--speed (> 0)"
        print(f"heimdall emulate: bad {field}", file=sys.stderr)
        return 2
    faults = Faults(
        busy=args.busy, password=args.password, no_gnss=args.no_gnss, gnss_age_s=args.gnss_age,
        drop_after_s=args.drop_after, stall_after_s=args.stall_after, speed=args.speed,
        time_limit_s=args.time_limit,
        reject_apps=args.reject_apps,
    )  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="heimdall-emulate-") as scratch:
            emulators = _emulators(args, faults, firmware, Path(scratch))
            rows = [[e.identity.name, port, f"{e.identity.lat:.5f}", f"{e.identity.lon:.5f}",
                     f"{e.source.sample_rate_hz:.3f}", f"{e.source.duration_s:.1f}"]
                    for port, e in emulators]  # fmt: skip
            print(format_table(["name", "port", "lat", "lon", "rate Hz", "s"], rows), flush=True)
            hosts = " ".join(f"{args.host}:{port}={e.identity.name}" for port, e in emulators)
            print(f"\nrecord them: heimdall acquire kiwi {hosts} --freq-khz F --seconds S\n"
                  "status pages at http://HOST:PORT/status; Ctrl-C stops", flush=True)  # fmt: skip
            asyncio.run(_serve_all(args.host, emulators))
    except (IngestError, ValueError) as exc:
        print(f"heimdall emulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"heimdall emulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _emulators(args, faults, firmware, scratch: Path) -> list:
    from heimdall.acquire.emulator import Emulator, Identity, Source

    if args.replay:
        wavs = [Path(args.replay)]
    else:
        wavs = _simulated_set(args, scratch)[: args.receivers or None]
    out = []
    for i, wav in enumerate(wavs):
        name, lat, lon = _identity(wav, args if args.replay else None)
        identity = Identity(name, lat, lon, firmware, args.users_max)
        live = args.simulate if args.live is None else args.live
        emulator = Emulator(Source.from_wav(wav), identity, faults, args.loop, live)
        out.append((args.port + i, emulator))
    return out


def _identity(wav: Path, args) -> tuple[str, float, float]:
    """Name and position: the options, else the file name's station and its gnss_pos file."""
    from heimdall.ingest.kiwi import find_position, parse_name

    name = (args.name if args else None) or parse_name(wav).station or wav.stem
    if args is not None and args.position:
        try:
            lat, lon = (float(v) for v in args.position.split(","))
        except ValueError as exc:
            raise ValueError(f"--position {args.position!r}: expected LAT,LON") from exc
        return name, lat, lon
    station = parse_name(wav).station or wav.stem
    lat, lon, _ = find_position(station, {}, wav)
    return name, lat, lon


def _simulated_set(args, scratch: Path) -> list[Path]:
    """One simulated TDoA set as kiwirecorder files; prints the truth."""
    from heimdall.sim.jobs import simulated_jobs
    from heimdall.sim.kiwiwav import write_kiwi_set

    job, truth = next(iter(simulated_jobs(
        "tdoa", args.network, 1, args.seed, "ci16_le", [args.signal], args.seconds
    )))  # fmt: skip
    # on the air from now: stamps moved to the present by whole seconds (relative times kept)
    shift_ns = (time.time_ns() - min(r.time_ns for r in job.receivers)) // 10**9 * 10**9
    job = job.model_copy(update={"receivers": [
        r.model_copy(update={"time_ns": r.time_ns + shift_ns}) for r in job.receivers
    ]})  # fmt: skip
    print(f"simulated {args.signal} transmitter at {truth['lat']:.5f}, {truth['lon']:.5f} "
          f"(seed {args.seed})", flush=True)  # fmt: skip
    return sorted(write_kiwi_set(job, scratch))


async def _serve_all(host: str, emulators: list) -> None:
    servers = [await e.serve(host, port) for port, e in emulators]
    try:
        await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()
