"""``heimdall ab``, ``heimdall reload`` and ``heimdall batch``: the model lifecycle (DESIGN §12)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
import redis

from heimdall.client.ab import clear_split, parse_weights, read_split, write_split
from heimdall.client.producer import served_versions, serving_nodes
from heimdall.config import Settings, get_settings
from heimdall.harness.console import format_table
from heimdall.schemas.result import Result


def add_parser(sub) -> None:
    p = sub.add_parser("ab", help="A/B split of default jobs between model versions")
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("set", help="set the run-time split, e.g. `heimdall ab set v1=0.9 v2=0.1`")
    s.add_argument("weights", nargs="+", metavar="VERSION=WEIGHT")
    s.add_argument("--shadow", type=float, default=None, metavar="F",
                   help="share of A/B jobs also scored by the other arms (0–1)")  # fmt: skip
    s.add_argument("--force", action="store_true", help="even if no node serves a version")
    s.set_defaults(func=cmd_ab_set)
    s = verbs.add_parser("show", help="the split in force and the versions nodes serve")
    s.set_defaults(func=cmd_ab_show)
    s = verbs.add_parser("clear", help="drop the run-time split (Settings' applies again)")
    s.set_defaults(func=cmd_ab_clear)
    s = verbs.add_parser("report", help="compare the arms on results from the stream")
    s.add_argument("--last", type=int, default=100_000, metavar="N", help="stream entries read")
    s.set_defaults(func=cmd_ab_report)

    p = sub.add_parser("reload", help="verify a model version and swap every child to it")
    p.add_argument("--version", default=None, help="default: re-read the version served now")
    p.add_argument("--node", action="append", default=None, metavar="NAME",
                   help="only this node (repeatable); default: every node")  # fmt: skip
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for children")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("batch", help="batches of jobs")
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("show", help="counts by status and code of one batch")
    s.add_argument("batch_id", metavar="ID", help="the batch id (a unique prefix will do)")
    s.add_argument("--json", action="store_true", help="print the batch as one JSON object")
    s.set_defaults(func=cmd_batch_show)


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def cmd_ab_set(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        weights = parse_weights(args.weights)
    except ValueError as exc:
        print(f"heimdall ab set: {exc}", file=sys.stderr)
        return 2
    if args.shadow is not None and not 0.0 <= args.shadow <= 1.0:
        print("heimdall ab set: --shadow must be between 0 and 1", file=sys.stderr)
        return 2
    client = _client(settings)
    unserved = sorted(set(weights) - served_versions(client, settings))
    if unserved and not args.force:
        print(
            f"heimdall ab set: no worker node serves {', '.join(unserved)} "
            "(start nodes with HEIMDALL_SERVE_MODELS, or --force); split unchanged",
            file=sys.stderr,
        )
        return 1
    write_split(client, settings, weights, args.shadow)
    return cmd_ab_show(args)


def cmd_ab_show(args: argparse.Namespace) -> int:
    settings = get_settings()
    client = _client(settings)
    split = read_split(client, settings)
    served = served_versions(client, settings)
    total = sum(split.weights.values()) or 1.0
    rows = [
        [v, f"{w:g}", f"{w / total:.1%}", "yes" if v in served else "NO"]
        for v, w in sorted(split.weights.items())
    ]
    print(f"A/B split from {split.source}; shadow fraction {split.shadow_fraction:g}")
    if rows:
        print(format_table(["version", "weight", "share", "served"], rows))
    else:
        print("no split: default jobs go to each node's default version")
    return 0


def cmd_ab_clear(args: argparse.Namespace) -> int:
    clear_split(_client(get_settings()), get_settings())
    return cmd_ab_show(args)


def cmd_ab_report(args: argparse.Namespace) -> int:
    from heimdall.client import ResultFeed

    settings = get_settings()
    arms: dict[str, list[Result]] = defaultdict(list)
    for _, result in ResultFeed(settings).latest(args.last):
        if result.ab_arm:
            arms[result.ab_arm].append(result)
    print(arm_table(arms) if arms else "no A/B results on the stream")
    shadows = _client(settings).xrevrange(settings.ab_shadow_key, count=args.last)
    if shadows:
        print()
        print(shadow_table([{k.decode(): v.decode() for k, v in f.items()} for _, f in shadows]))
    return 0


def arm_table(arms: dict[str, list[Result]]) -> str:
    """Per arm: jobs, failure rate, latency (queue + worker, ms) and 95 % ellipse size."""
    rows = []
    for arm, results in sorted(arms.items()):
        failed = sum(r.status != "ok" for r in results)
        latency = [(r.timings_ms.queue or 0.0) + (r.timings_ms.total or 0.0) for r in results]
        major = [r.ellipse.semi_major_m for r in results if r.ellipse]
        rows.append([
            arm, len(results), f"{failed / len(results):.2%}",
            f"{np.percentile(latency, 50):.1f}", f"{np.percentile(latency, 95):.1f}",
            f"{statistics.median(major) / 1e3:.1f}" if major else "-",
        ])  # fmt: skip
    headers = ["arm", "jobs", "failed", "p50 ms", "p95 ms", "median semi-major km"]
    return format_table(headers, rows)


def shadow_table(entries: list[dict]) -> str:
    """Per (arm, other) pair of shadow-scored jobs: how far apart their estimates were."""
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        key = (e["arm"], e["other"])
        counts[key] += 1
        if e.get("distance_m"):
            pairs[key].append(float(e["distance_m"]))
    rows = []
    for key in sorted(counts):
        d = pairs[key]
        rows.append([
            key[0], key[1], counts[key], len(d),
            f"{np.median(d) / 1e3:.2f}" if d else "-",
            f"{np.percentile(d, 90) / 1e3:.2f}" if d else "-",
        ])  # fmt: skip
    headers = ["arm", "shadow", "jobs", "both ok", "median km apart", "p90 km apart"]
    return format_table(headers, rows)


def cmd_reload(args: argparse.Namespace) -> int:
    from heimdall.config.celery import celery_app
    from heimdall.workers.control import RELOAD_COMMAND

    settings = get_settings()
    # Replies are collected for 3 s unless every node answered: the nodes named, or those that
    # said lately what they serve (a refused reload then answers in about a second, not 3+).
    expected = len(args.node) if args.node else len(serving_nodes(_client(settings), settings))
    app = celery_app(settings, "heimdall-reload")
    try:
        replies = app.control.broadcast(
            RELOAD_COMMAND,
            arguments={"version": args.version},
            destination=args.node,
            reply=True,
            timeout=3.0,
            limit=expected or None,
        )
    finally:
        app.close()
    if not replies:
        print("heimdall reload: no worker node answered", file=sys.stderr)
        return 1
    answers = {node: reply for r in replies for node, reply in r.items()}
    swapped = _wait_for_children(settings, answers, args.timeout)
    print(reload_table(answers, swapped))
    return 0 if all(a.get("ok") for a in answers.values()) else 1


def _wait_for_children(settings: Settings, answers: dict, timeout_s: float) -> dict[str, dict]:
    """Per node, its children's records once each serves the node's new generation (or the
    timeout passes): ``{node: {child: record}}``."""
    client = _client(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        records = [json.loads(v) for v in client.hgetall(settings.serving_key).values()]
        by_node: dict[str, dict] = defaultdict(dict)
        for r in records:
            by_node[r["node"]][r["pid"]] = r
        done = all(
            sum(c["generation"] >= a["generation"] for c in by_node[n].values())
            >= a.get("children", 0)
            for n, a in answers.items()
            if a.get("ok")
        )
        if done or time.monotonic() >= deadline:
            return by_node
        time.sleep(0.1)


def reload_table(answers: dict, children: dict[str, dict]) -> str:
    rows = []
    for node, a in sorted(answers.items()):
        if not a.get("ok"):
            rows.append([node, "refused", a.get("version"), a.get("serving", ""), a.get("error")])
            continue
        current = [c for c in children.get(node, {}).values() if c["generation"] >= a["generation"]]
        errors = [c["error"] for c in current if c.get("error")]
        swapped = len(current) - len(errors)
        detail = f"{swapped}/{a.get('children', '?')} children swapped"
        if errors:
            detail += f"; {len(errors)} kept the old model: {errors[0]}"
        rows.append([node, "ok", a["version"], a.get("previous", ""), detail])
    return format_table(["node", "reload", "version", "was / still serving", "children"], rows)


def cmd_batch_show(args: argparse.Namespace) -> int:
    from heimdall.client import Producer

    producer = Producer()
    ids = producer.batch_ids(args.batch_id)
    if len(ids) > 1:
        shown = ", ".join(i[:12] for i in ids[:5])
        print(f"heimdall batch show: {args.batch_id!r} starts {len(ids)} batch ids ({shown}…): "
              "give more of it", file=sys.stderr)  # fmt: skip
        return 2
    record = producer.batch(ids[0]) if ids else None
    if record is None:
        unknown = f"no batch {args.batch_id} (unknown or expired)"
        print(f"heimdall batch show: {unknown}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(batch_view(ids[0], record)))
        return 0
    print(batch_table(ids[0], record))
    return 0


def batch_view(batch_id: str, record: dict[str, str]) -> dict:
    """A batch's record as typed JSON: counts as numbers, both times in RFC 3339 UTC."""
    total, ended = int(record.get("total", 0)), int(record.get("ended", 0))
    finished = record.get("finished_at")  # Redis TIME "seconds.microseconds"
    return {
        "batch_id": batch_id,
        "total": total,
        "ended": ended,
        "pending": total - ended,
        "done": "summary" in record,
        "statuses": {k[7:]: int(v) for k, v in record.items() if k.startswith("status:")},
        "codes": {k[5:]: int(v) for k, v in record.items() if k.startswith("code:")},
        "created_at": record.get("created_at"),
        "finished_at": _rfc3339(float(finished)) if finished else None,
    }


def _rfc3339(unix_s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix_s, UTC).isoformat()


def batch_table(batch_id: str, record: dict[str, str]) -> str:
    total, ended = int(record.get("total", 0)), int(record.get("ended", 0))
    rows = [
        ["batch", batch_id],
        ["jobs", total],
        ["ended", ended],
        ["pending", total - ended],
        ["created", record.get("created_at", "")],
        ["done", "yes" if "summary" in record else "no"],
    ]
    rows += [[f"status {k[7:]}", v] for k, v in sorted(record.items()) if k.startswith("status:")]
    rows += [[f"failed: {k[5:]}", v] for k, v in sorted(record.items()) if k.startswith("code:")]
    return format_table(["batch", "value"], rows)
