"""``heimdall demo``: the whole fleet in one command, on this machine.

Redis (the configured one, or a private ``redis-server`` when none answers) → worker nodes
(prefork children with preloaded ONNX sessions) → a producer submitting simulated jobs →
results read live from pub/sub and shown against the simulator's truth → clean shutdown.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from pathlib import Path

from heimdall.cli.options import RSS_NETWORKS
from heimdall.config import get_settings, redacted_url
from heimdall.harness.console import Progress, format_table
from heimdall.harness.result_table import LATENCY_COLUMN, RESULT_HEADERS, result_row
from heimdall.harness.scoring import error_m, inside_ellipse


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(
    jobs: int = 40,
    nodes: int = 1,
    concurrency: int | None = None,
    network: str = "reference",
    seed: int = 2026,
    timeout_s: float = 300.0,
    live_s: float | None = None,
) -> int:
    from heimdall.harness.fleet import LocalFleet  # the fleet and the simulator: when run
    from heimdall.sim import ScenarioGenerator, SimConfig

    base = get_settings()
    concurrency = concurrency or base.concurrency
    logs = tempfile.TemporaryDirectory(prefix="heimdall-demo-")
    with logs as log_dir, LocalFleet(base, "configured-or-private", Path(log_dir)) as fleet:
        if fleet.server is not None and base.redis_url != fleet.settings.redis_url:
            say(f"no Redis answers at {redacted_url(base.redis_url)}; started {fleet.redis_note}")
        else:
            say(f"using {fleet.redis_note}")
        for i in range(nodes):
            say(f"starting worker node {i + 1}/{nodes} ({concurrency} prefork children)")
            try:
                fleet.start_node(concurrency)
            except (RuntimeError, TimeoutError) as exc:
                say(f"worker failed to start: {exc}; its log:")
                print(fleet.nodes[-1].log_path.read_text()[-4000:])
                return 1
        say(f"fleet ready: {nodes} node(s) × {concurrency} children")
        if live_s is not None:
            return _live(fleet, live_s, seed)
        gen = ScenarioGenerator(SimConfig(network=network), seed=seed)
        truth, sent_s = {}, {}
        with fleet.listener() as heard:  # up before the first submit: no result is missed
            progress = Progress(jobs, "submit")
            for i in range(jobs):
                sc = gen.next()
                # fresh job ids: a rerun must not be answered from the results of the last one
                handle = fleet.producer.submit(sc.to_job(job_id=str(uuid.uuid4())))
                truth[handle.job_id] = (sc.true_lat, sc.true_lon)
                sent_s[handle.job_id] = handle.submitted_s
                progress.update(i + 1)
            heard.wait_for(set(truth), timeout_s, Progress(jobs, "results").update)
            results = {
                job_id: (heard.result(job_id), (heard.received[job_id][0] - sent_s[job_id]) * 1e3)
                for job_id in truth
                if job_id in heard.received
            }
        _show(results, truth, jobs)
        say("stopping workers (warm shutdown)")
    say("done")
    return 0 if len(results) == jobs else 1


def _live(fleet, seconds: float, seed: int) -> int:
    """The live path on one machine: emulated KiwiSDR receivers (a simulated LF time-signal
    station heard by four of them) → ``heimdall acquire kiwi … --submit --wait`` → the fix."""
    import os
    import subprocess
    import sys

    from heimdall.harness.emulated_kiwis import emulated_kiwis

    with emulated_kiwis("--simulate", "--receivers", "4", "--seed", str(seed), "--seconds",
                        str(max(90.0, 3 * seconds)), count=4) as kiwis:  # fmt: skip
        lat, lon = kiwis.truth
        say(f"4 emulated KiwiSDR receivers (heimdall emulate kiwi --simulate) on ports "
            f"{kiwis.ports[0]}–{kiwis.ports[-1]}; the transmitter is at {lat:.4f}, {lon:.4f}")
        with tempfile.TemporaryDirectory(prefix="heimdall-live-") as out:
            command = ["acquire", "kiwi", *kiwis.addresses, "--freq-khz", "77.5", "--seconds",
                       f"{seconds:g}", "--out", out, "--submit", "--wait"]  # fmt: skip
            say("heimdall " + " ".join(command))
            done = subprocess.run([sys.executable, "-m", "heimdall.cli", *command],
                                  env={**os.environ, **fleet.env})  # fmt: skip
    say(f"truth: {lat:.4f}, {lon:.4f} (compare the position above)")
    say("stopping workers (warm shutdown)")
    return done.returncode


def _show(results: dict, truth: dict, jobs: int) -> None:
    rows = [result_row(r, truth[job_id], latency) for job_id, (r, latency) in results.items()]
    headers = list(RESULT_HEADERS)
    headers[LATENCY_COLUMN] = "submit→result ms"  # measured here, by the producer's clock
    print(format_table(headers, rows))
    ok = [(r, truth[j]) for j, (r, _) in results.items() if r.status == "ok"]
    errors_km = [error_m(r, *t) / 1000.0 for r, t in ok]
    inside = [inside_ellipse(r, *t) for r, t in ok]
    latencies = sorted(latency for _, latency in results.values())
    print()
    summary = [
        ["results", f"{len(results)}/{jobs}"],
        ["ok / failed", f"{len(ok)} / {len(results) - len(ok)}"],
    ]
    if errors_km:
        summary += [
            ["median error", f"{statistics.median(errors_km):.1f} km"],
            ["truth inside 95 % ellipse", f"{sum(inside)}/{len(inside)}"],
        ]
    if latencies:
        summary += [["latency p50 (submit → result)", f"{statistics.median(latencies):.0f} ms"]]
    print(format_table(["summary", "value"], summary))


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole fleet on this machine: Redis, workers, producer")
    p.add_argument("--jobs", type=int, default=40, help="simulated jobs to submit")
    p.add_argument("--nodes", type=int, default=1, help="worker nodes (replicas)")
    p.add_argument("--concurrency", type=int, default=None, help="children per node")
    p.add_argument("--network", default="reference", choices=RSS_NETWORKS,
                   help="simulated receiver network (default: reference, 7 stations)")
    p.add_argument("--seed", type=int, default=2026, help="simulator seed")
    p.add_argument(
        "--live",
        nargs="?",
        type=float,
        const=15.0,
        default=None,
        metavar="S",
        help="instead: emulated KiwiSDR receivers recorded live for S s (default 15) by "
        "`heimdall acquire kiwi`, submitted, answered",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(
        jobs=args.jobs,
        nodes=args.nodes,
        concurrency=args.concurrency,
        network=args.network,
        seed=args.seed,
        live_s=args.live,
    )
