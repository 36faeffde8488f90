"""``heimdall status``: worker nodes, their children, queue depths, the result stream and the
dead letters."""

from __future__ import annotations

import argparse
import json

import redis

from heimdall.broker.queues import queue_lengths
from heimdall.client.producer import served_versions
from heimdall.config import Settings, get_settings
from heimdall.config.celery import celery_app
from heimdall.harness.console import format_table

NO_WORKER = "no worker answered"


def fleet_status(settings: Settings, timeout_s: float = 1.0) -> str:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
    client.ping()  # an unreachable Redis is said at once, not after the broker's retries
    app = celery_app(settings, "heimdall-status")
    try:
        inspect = app.control.inspect(timeout=timeout_s)
        stats = inspect.stats() or {}
        # no node answered: asking twice more would only wait twice more
        active = (inspect.active() or {}) if stats else {}
        queues = (inspect.active_queues() or {}) if stats else {}
    finally:
        app.close()
    worker_rows = []
    for node, info in sorted(stats.items()):
        pool = info.get("pool", {})
        total = sum((info.get("total") or {}).values())
        worker_rows.append(
            [
                node,
                pool.get("max-concurrency", ""),
                len(pool.get("processes", [])),
                len(active.get(node, [])),
                total,
                ",".join(q["name"] for q in queues.get(node, [])),
            ]
        )
    served = sorted(served_versions(client, settings))
    names = [*settings.worker_queues(), *settings.worker_queues(served or None)]
    if settings.broker_is_redis:
        names += _extra_queues(client, settings)
    queue_rows = [list(row) for row in queue_lengths(settings, list(dict.fromkeys(names))).items()]
    loads = {k.decode(): int(v) for k, v in client.hgetall(settings.session_loads_key).items()}
    serving = _serving_rows(client, settings, set(stats))
    parts = [
        format_table(
            ["worker node", "concurrency", "children", "running", "done", "queues"], worker_rows
        )
        if worker_rows
        else NO_WORKER,
        format_table(["child", "node", "serves", "generation", "last reload error"], serving)
        if serving
        else "no child has recorded what it serves",
        format_table(["queue", "waiting jobs"], queue_rows),
        format_table(
            ["durable list", "entries"],
            [
                [settings.results_stream, int(client.xlen(settings.results_stream))],
                # refused messages: `heimdall dead-letters` lists them
                [settings.dead_letters_key, int(client.llen(settings.dead_letters_key))],
            ],
        ),
        f"ONNX session loads recorded: {sum(loads.values())} in {len(loads)} child processes",
    ]
    return "\n\n".join(parts)


def _extra_queues(client: redis.Redis, settings: Settings) -> list[str]:
    """Per-version queues that hold messages but no local setting names (A/B rollouts)."""
    prefix = f"{settings.key_prefix}:{settings.key_prefix}.jobs."
    known = set(settings.worker_queues())
    names = []
    for key in client.scan_iter(match=f"{prefix}*", count=100):
        name = key.decode()[len(settings.key_prefix) + 1 :]
        if name not in known and client.type(key) == b"list":
            names.append(name)
    return sorted(names)


def _serving_rows(client: redis.Redis, settings: Settings, nodes: set[str]) -> list[list]:
    """What each child of an answering node serves (records of stopped nodes are skipped)."""
    rows = []
    for child, raw in sorted(client.hgetall(settings.serving_key).items()):
        record = json.loads(raw)
        if nodes and record["node"] not in nodes:
            continue
        rows.append([
            child.decode(), record["node"], ", ".join(record["versions"]),
            record["generation"], record.get("error") or "",
        ])  # fmt: skip
    return rows


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="workers, queue depths, stream length")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for nodes' answers")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when at least one worker node answered, 1 when none did (a probe can tell)."""
    text = fleet_status(get_settings(), timeout_s=args.timeout)
    print(text)
    return 1 if text.startswith(NO_WORKER) else 0
