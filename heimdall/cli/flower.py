"""``heimdall flower``: Flower on the fleet, behind basic auth from Settings (no default
password)."""

from __future__ import annotations

import argparse
import sys

from heimdall.config import get_settings


def add_parser(sub) -> None:
    p = sub.add_parser("flower", help="Flower with basic auth from Settings")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_flower)


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
