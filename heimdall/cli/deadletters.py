"""``heimdall dead-letters``: list, show, requeue or purge the messages workers refused."""

from __future__ import annotations

import argparse
import sys

from heimdall.config import get_settings
from heimdall.harness.console import format_table


def add_parser(sub) -> None:
    p = sub.add_parser("dead-letters", help="messages workers refused: list, show, requeue, purge")
    p.add_argument("--limit", type=int, default=50, help="letters listed, newest first")
    p.set_defaults(func=cmd_dead_letters, id=None)
    verbs = p.add_subparsers(dest="action", metavar="{list,show,requeue,purge}")
    listed = verbs.add_parser("list", help="the letters as a table, newest first (the default)")
    listed.add_argument("--limit", type=int, default=argparse.SUPPRESS, help="letters listed")
    singles = {
        "show": "one letter, its raw message included",
        "requeue": "push a letter's whole message back onto its queue",
    }
    for name, about in singles.items():
        one = verbs.add_parser(name, help=about)
        one.add_argument("id", metavar="ID", help="letter id (a unique prefix will do)")
    verbs.add_parser("purge", help="drop every dead letter")


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List, show, requeue or purge the messages workers refused (``{prefix}:dead-letters``)."""
    import redis

    from heimdall.broker.deadletters import DeadLetterBox

    settings = get_settings()
    box = DeadLetterBox(redis.Redis.from_url(settings.redis_url), settings)
    if args.action in (None, "list"):
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
