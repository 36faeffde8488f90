"""``heimdall watch``: results live as a table (pub/sub), optionally after replaying the stream."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
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


def cmd_watch(args: argparse.Namespace) -> int:
    from heimdall.client import ResultFeed
    from heimdall.harness.result_table import LIVE_HEADERS, live_row

    feed = ResultFeed()
    widths = [8, 6, 8, 8, 8, 8, 4, 15, 30]

    def show(row: list) -> None:
        cells = [str(v) for v in row]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), flush=True)

    show(LIVE_HEADERS)
    pubsub = feed.open_subscription()  # before replaying, so nothing falls in between
    if args.from_stream is not None:
        for _, result in feed.read_stream(args.from_stream):
            show(live_row(result))
    try:
        for result in feed.listen(pubsub):
            show(live_row(result))
    except KeyboardInterrupt:
        return 0
    return 0
