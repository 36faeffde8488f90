"""The ``heimdall`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from heimdall.config import get_settings, redacted_url
from heimdall.harness.console import Progress, format_table


def _model_dir(version: str | None) -> Path:
    settings = get_settings()
    return settings.models_dir / (version or settings.default_model)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from heimdall.training.train import TrainConfig, train
    except ImportError as exc:
        print(
            f"heimdall train needs the 'train' extra (pip install -e '.[train]'): {exc}",
            file=sys.stderr,
        )
        return 2
    config = TrainConfig(
        version=args.version, seed=args.seed, train_jobs=args.jobs, epochs=args.epochs
    )
    train(config, Path(args.models_dir) if args.models_dir else get_settings().models_dir)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from heimdall.measure.evaluation import evaluate, record_metrics, summary_table

    model_dir = _model_dir(args.model)
    if args.method:
        from heimdall.measure.time_eval import evaluate_time, time_table

        networks = args.network or ["reference", "random", "hf"]
        rows = evaluate_time(
            model_dir, args.method, networks, args.signal, args.jobs, args.seed,
            multipath=args.multipath == "echo",
        )  # fmt: skip
        print(time_table(rows))
        return 0
    for network in args.network or ["reference"]:
        summary = evaluate(model_dir, args.jobs, args.seed, network)
        print(summary_table(summary))
        print()
        if args.record:
            record_metrics(model_dir, summary)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulated jobs with their truth: JSON lines, SigMF collections or KiwiSDR WAV sets."""
    if args.kiwi and args.kind != "tdoa":
        print("heimdall simulate: --kiwi needs --kind tdoa (GNSS-timed receivers)", file=sys.stderr)
        return 2
    progress = Progress(args.jobs, "simulate")
    fh = open(args.out, "w") if args.out else None  # noqa: SIM115 -- closed below
    try:
        for i, (job, truth) in enumerate(_simulated(args)):
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
    print(f"wrote {args.jobs} simulated jobs to {args.out or args.sigmf or args.kiwi}")
    return 0


def _simulated(args: argparse.Namespace):
    """``(job, truth)`` pairs of the simulator ``args.kind`` names."""
    if args.kind == "tdoa":
        from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

        network = args.network if args.network in ("reference", "random", "hf") else "reference"
        gen = TdoaScenarioGenerator(TdoaSimConfig(network=network), seed=args.seed)
        for _ in range(args.jobs):
            sc = gen.next()
            yield sc.job, {"lat": sc.true_lat, "lon": sc.true_lon, "signal": sc.signal_kind}
        return
    from heimdall.sim import ScenarioGenerator, SimConfig

    gen = ScenarioGenerator(SimConfig(network=args.network), seed=args.seed)
    for _ in range(args.jobs):
        sc = gen.next()
        yield sc.to_job(args.datatype), {"lat": sc.true_lat, "lon": sc.true_lon}


def cmd_localize(args: argparse.Namespace) -> int:
    """Localize jobs from a JSON-lines file (``heimdall simulate`` output or bare jobs)."""
    from heimdall.harness.result_table import RESULT_HEADERS, result_row
    from heimdall.inference import Localizer

    localizer = Localizer(_model_dir(args.model))
    rows = []
    for job, truth in _read_jobs_file(args.jobs_file):
        result = localizer.localize(job)
        if args.json:
            print(result.to_json(), flush=True)
        rows.append(result_row(result, truth))
    if not args.json:
        print(format_table(RESULT_HEADERS, rows))
    return 0


def _read_jobs_file(path: str):
    """``(job dict, truth or None)`` per line of a JSON-lines file; exits naming a bad line."""
    try:
        fh = open(path)  # noqa: SIM115 -- a with block below, after the error message
    except OSError as exc:
        raise SystemExit(f"{path}: {exc.strerror}") from exc
    with fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{line_no}: not JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise SystemExit(f"{path}:{line_no}: expected a JSON object")
            truth = record.get("truth")
            yield record.get("job", record), (truth["lat"], truth["lon"]) if truth else None


def cmd_worker(args: argparse.Namespace) -> int:
    from heimdall.telemetry.metrics import prepare_multiprocess_dir

    settings = get_settings()
    prepare_multiprocess_dir(settings)  # before Celery's CLI imports prometheus_client
    from heimdall.tasks.app import app

    argv = [
        "worker",
        f"--concurrency={args.concurrency or settings.concurrency}",
        f"--queues={','.join(settings.worker_queues())}",
        "--events",
        f"--loglevel={args.loglevel}",
        f"--hostname={args.name}",
    ]
    # Celery's exit code: non-zero when the node could not go on (supervisors restart it).
    return app.start(argv) or 0


def cmd_submit(args: argparse.Namespace) -> int:
    from heimdall.client import Producer

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
    if args.file:
        for i, (raw, truth) in enumerate(_read_jobs_file(args.file)):
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
        from heimdall.sim import ScenarioGenerator, SimConfig

        gen = ScenarioGenerator(SimConfig(network=args.network), seed=args.seed)
        progress = Progress(args.simulate, "simulate")
        for i in range(args.simulate):
            sc = gen.next()
            jobs.append(sc.to_job(args.datatype, job_id=str(uuid.uuid4()), **overrides))
            truths.append((sc.true_lat, sc.true_lon))
            progress.update(i + 1)
    if args.batch:
        batch = producer.submit_batch(jobs, inline=args.inline)
        handles = batch.handles
        print(f"batch {batch.batch_id}: `heimdall batch show {batch.batch_id}`", file=sys.stderr)
    else:
        handles = producer.submit_many(jobs, inline=args.inline)
    queues = sorted({h.queue for h in handles})
    print(f"submitted {len(handles)} jobs to {queues}", file=sys.stderr, flush=True)
    if not args.wait:
        for h in handles:
            print(h.job_id)
        return 0
    from heimdall.cli.results import show_results

    code = show_results(handles, truths, args.timeout, args.json)
    if args.batch:
        from heimdall.cli.lifecycle import batch_table

        print(batch_table(batch.batch_id, batch.record() or {}), file=sys.stderr)
    return code


def cmd_watch(args: argparse.Namespace) -> int:
    from heimdall.client import ResultFeed
    from heimdall.harness.result_table import RESULT_HEADERS, result_row

    feed = ResultFeed()
    widths = [8, 6, 8, 8, 8, 8, 4, 8, 6, 10, 30]

    def show(row: list) -> None:
        cells = [str(v) for v in row]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), flush=True)

    show(RESULT_HEADERS)
    pubsub = feed.open_subscription()  # before replaying, so nothing falls in between
    if args.from_stream is not None:
        for _, result in feed.read_stream(args.from_stream):
            show(result_row(result))
    try:
        for result in feed.listen(pubsub):
            show(result_row(result))
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from heimdall.cli.status import fleet_status

    print(fleet_status(get_settings(), timeout_s=args.timeout))
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    import os
    import secrets

    settings = get_settings()
    password = settings.flower_password
    if not password or password == WEAK_FLOWER_PASSWORD or len(password) < 8:
        print(
            "heimdall flower: refusing to start without a password of 8+ characters: set "
            "HEIMDALL_FLOWER_PASSWORD (and HEIMDALL_FLOWER_USER, default 'heimdall'), e.g. "
            f"HEIMDALL_FLOWER_PASSWORD={secrets.token_urlsafe(12)}",
            file=sys.stderr,
        )
        return 2
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "heimdall.tasks.app",
        "flower",
        f"--port={args.port or settings.flower_port}",
        f"--address={args.address}",
    ]
    # by environment, not argv: a command line is readable by every user (ps)
    env = {**os.environ, "FLOWER_BASIC_AUTH": f"{settings.flower_user}:{password}"}
    os.execve(sys.executable, argv, env)
    return 0


WEAK_FLOWER_PASSWORD = "heimdall"  # the default of earlier versions


def cmd_demo(args: argparse.Namespace) -> int:
    from heimdall.cli.demo import run_demo

    return run_demo(
        jobs=args.jobs,
        nodes=args.nodes,
        concurrency=args.concurrency,
        network=args.network,
        seed=args.seed,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from heimdall.measure.bench import run_bench

    report = run_bench(
        jobs=args.jobs,
        processes=args.processes,
        latency_jobs=args.latency_jobs,
        rate_fraction=args.rate_fraction,
        use_configured_redis=args.use_configured_redis,
        with_scaling=not args.no_scaling,
        out=Path(args.out) if args.out else None,
        with_tdoa=not args.no_tdoa,
    )
    audit = report["fleet"]["audit"]
    return 0 if audit["lost"] == 0 and audit["computed_twice_or_more"] == 0 else 1


def cmd_picture(args: argparse.Namespace) -> int:
    """A simulated TDoA fix drawn as a PNG: receivers, hyperbolae, ellipse, truth."""
    from heimdall.measure.picture import picture

    result = picture(_model_dir(args.model), Path(args.out), args.seed, args.network, args.signal)
    major, minor = result.ellipse.semi_major_m, result.ellipse.semi_minor_m
    print(f"wrote {args.out}: {len(result.tdoa.pairs)} pairs, 95 % ellipse "
          f"{major / 1000:.1f} × {minor / 1000:.1f} km")  # fmt: skip
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List, show, requeue or purge the messages workers refused (``{prefix}:dead-letters``)."""
    import redis

    from heimdall.broker.deadletters import DeadLetterBox

    settings = get_settings()
    box = DeadLetterBox(redis.Redis.from_url(settings.redis_url), settings)
    if args.action == "list":
        letters = box.list(args.limit)
        rows = [
            [d.letter_id[:12], d.received_at[:19], d.queue, d.reason, d.task_id or "-",
             d.raw_bytes, d.detail[:60]]
            for d in letters
        ]  # fmt: skip
        headers = ["id", "received (UTC)", "queue", "reason", "job id", "bytes", "detail"]
        print(format_table(headers, rows))
        print(f"{len(letters)} of {box.count()} dead letters shown (newest first)")
        return 0
    if args.action == "purge":
        print(f"purged {box.purge()} dead letters")
        return 0
    if not args.id:
        print(f"heimdall dead-letters {args.action}: give the letter's id", file=sys.stderr)
        return 2
    if args.action == "show":
        letter = box.get(args.id)
        if letter is None:
            print(f"no single dead letter with id {args.id!r}", file=sys.stderr)
            return 1
        for name in ("letter_id", "received_at", "queue", "reason", "detail", "task_id"):
            print(f"{name:12} {getattr(letter, name)}")
        kept = "whole" if letter.complete else f"first {len(letter.raw.encode())} bytes"
        print(f"{'raw':12} {letter.raw_bytes} bytes ({kept}):")
        print(letter.raw)
        return 0
    try:
        letter = box.requeue(args.id)
    except (LookupError, ValueError) as exc:
        print(f"heimdall dead-letters requeue: {exc}", file=sys.stderr)
        return 1
    print(f"requeued dead letter {letter.letter_id} onto {letter.queue}")
    return 0


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


def cmd_memory(args: argparse.Namespace) -> int:
    """Peak RSS of one worker child running one large job (private Redis, one node)."""
    from heimdall.measure.memory import measure

    report = measure(args.receivers, args.samples, args.max_job_samples, timed=args.timed)
    print(report.table())
    return 0 if report.status == "ok" else 1


JSON_HELP = "print one heimdall.result/1 JSON object per line instead of a table"


def build_parser() -> argparse.ArgumentParser:
    from heimdall.cli import ingest, lifecycle
    from heimdall.cli import map as map_page

    parser = argparse.ArgumentParser(prog="heimdall", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ingest.add_parser(sub)
    lifecycle.add_parsers(sub)
    map_page.add_parser(sub)

    p = sub.add_parser("train", help="simulate, train, calibrate and export a model (needs torch)")
    p.add_argument("--version", default="v1")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--jobs", type=int, default=50_000, help="simulated training jobs")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--models-dir", default=None, help="default: Settings.models_dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="model vs RSS baseline on held-out simulated jobs")
    p.add_argument("--model", default=None, help="model version (default: Settings.default_model)")
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=777_001)
    p.add_argument(
        "--network",
        nargs="+",
        default=None,
        choices=["reference", "random", "mixed", "hf"],
        help="default: reference (RSS eval); reference random hf (with --method)",
    )
    p.add_argument("--record", action="store_true", help="write the figures into the manifest")
    p.add_argument(
        "--method",
        choices=["tdoa", "hybrid", "rss", "auto"],
        default=None,
        help="evaluate on the TDoA simulator (GNSS-timed receivers, σ 50 ns) with this method",
    )
    p.add_argument(
        "--signal",
        nargs="+",
        default=["nfm", "4fsk", "afsk", "cw"],
        choices=["nfm", "4fsk", "afsk", "cw"],
    )
    p.add_argument(
        "--multipath",
        choices=["echo", "none"],
        default="echo",
        help="with --method: one echo per receiver (default) or none (the CRLB's own model)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("simulate", help="write simulated jobs (with truth) as JSON lines")
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--network", default="reference", choices=["reference", "random", "mixed", "hf"])
    p.add_argument("--datatype", default="cf32_le", choices=["cf32_le", "ci16_le", "cu8"])
    p.add_argument(
        "--kind",
        default="rss",
        choices=["rss", "tdoa"],
        help="rss: the network's training simulator; tdoa: GNSS-timed receivers, time of "
        "flight, multipath, real-bandwidth signals",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="JSON lines: one job and its truth per line")
    where.add_argument("--sigmf", metavar="DIR", help="one SigMF collection per job, time-tagged")
    where.add_argument("--kiwi", metavar="DIR", help="KiwiSDR IQ WAV sets (with --kind tdoa)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("localize", help="localize jobs from a JSON-lines file, in process")
    p.add_argument("jobs_file")
    p.add_argument("--model", default=None)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_localize)

    p = sub.add_parser("picture", help="a simulated TDoA fix drawn as a PNG")
    p.add_argument("--out", default="tdoa.png")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--network", default="reference", choices=["reference", "random", "hf"])
    p.add_argument("--signal", default="nfm", choices=["nfm", "4fsk", "afsk", "cw"])
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_picture)

    p = sub.add_parser("dead-letters", help="messages workers refused: list, show, requeue, purge")
    p.add_argument(
        "action", nargs="?", default="list", choices=["list", "show", "requeue", "purge"]
    )
    p.add_argument("id", nargs="?", default=None, help="letter id (a unique prefix will do)")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser(
        "chaos", help="jobs under SIGKILLs and a Redis restart, then an audit of every result"
    )
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--rate", type=float, default=8.0, help="jobs per second")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=1, help="children per node")
    p.add_argument("--kill-child-every", type=float, default=3.0, metavar="S")
    p.add_argument("--seed", type=int, default=20261127)
    p.set_defaults(func=cmd_chaos)

    p = sub.add_parser("memory", help="peak memory of a worker child on one large job")
    p.add_argument("--receivers", type=int, default=16)
    p.add_argument("--samples", type=int, default=2_000_000, help="cf32 samples per receiver")
    p.add_argument("--max-job-samples", type=int, default=None, help="HEIMDALL_MAX_JOB_SAMPLES")
    p.add_argument("--timed", action="store_true", help="GNSS-timed captures: a TDoA job")
    p.set_defaults(func=cmd_memory)

    p = sub.add_parser("worker", help="start a worker node (prefork, ONNX session per child)")
    p.add_argument("--concurrency", type=int, default=None, help="default: cores")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--name", default="heimdall@%h", help="Celery node name (unique per host)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("submit", help="submit simulated jobs, or jobs from a JSON-lines file")
    p.add_argument("--simulate", type=int, default=10, metavar="N", help="simulated jobs")
    p.add_argument("--file", default=None, help="JSON lines (heimdall simulate output or jobs)")
    p.add_argument("--network", default="reference", choices=["reference", "random", "mixed"])
    p.add_argument("--seed", type=int, default=None, help="simulator seed (default: random)")
    p.add_argument("--datatype", default="cf32_le", choices=["cf32_le", "ci16_le", "cu8"])
    p.add_argument("--priority", default="interactive", choices=["interactive", "bulk"])
    p.add_argument("--model", default="default")
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

    p = sub.add_parser("watch", help="show results live as a table (pub/sub)")
    p.add_argument(
        "--from-stream",
        nargs="?",
        const="0-0",
        default=None,
        metavar="ID",
        help="first replay the durable stream after ID (default: from the start)",
    )
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("status", help="workers, queue depths, stream length")
    p.add_argument("--timeout", type=float, default=1.0)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("flower", help="Flower with basic auth from Settings")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_flower)

    p = sub.add_parser("demo", help="the whole fleet on this machine: Redis, workers, producer")
    p.add_argument("--jobs", type=int, default=40)
    p.add_argument("--nodes", type=int, default=1, help="worker nodes (replicas)")
    p.add_argument("--concurrency", type=int, default=None, help="children per node")
    p.add_argument("--network", default="reference", choices=["reference", "random", "mixed"])
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="compute limit vs fleet, latency at half load, scaling")
    p.add_argument("--jobs", type=int, default=500, help="standard jobs per throughput run")
    p.add_argument("--processes", type=int, default=2, help="Localizer processes = children")
    p.add_argument("--latency-jobs", type=int, default=200)
    p.add_argument("--rate-fraction", type=float, default=0.5, help="of the saturated rate")
    p.add_argument(
        "--use-configured-redis",
        action="store_true",
        help="use Settings.redis_url instead of a private redis-server",
    )
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument(
        "--no-tdoa",
        action="store_true",
        help="skip the TDoA jobs (in process and through the fleet)",
    )
    p.add_argument("--out", default=None, help="write the figures as JSON")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import redis
    from kombu.exceptions import OperationalError
    from pydantic import ValidationError

    from heimdall.schemas import ModelIntegrityError

    args = build_parser().parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:
        from heimdall.inference.failures import validation_message

        print(f"heimdall: invalid HEIMDALL_* setting: {validation_message(exc)}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ModelIntegrityError as exc:
        print(f"heimdall: model refused: {exc}", file=sys.stderr)
    except (redis.ConnectionError, OperationalError) as exc:
        url = redacted_url(get_settings().redis_url)
        print(f"heimdall: cannot reach Redis at {url} (HEIMDALL_REDIS_URL): {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `heimdall … --json | head`: the reader has all it wanted
        sys.stderr.close()
        return 0
    return 2
