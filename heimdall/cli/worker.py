"""``heimdall worker``: a worker node (Celery prefork; an ONNX session per child)."""

from __future__ import annotations

import argparse

from heimdall.config import get_settings


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="start a worker node (prefork, ONNX session per child)")
    p.add_argument("--concurrency", type=int, default=None, help="default: cores")
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--name", default="heimdall@%h", help="Celery node name (unique per host)")
    p.set_defaults(func=cmd_worker)


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
