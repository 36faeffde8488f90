"""``heimdall flower``: Flower on the fleet, behind basic auth from Settings (no default
password)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from heimdall.config import get_settings


def add_parser(sub) -> None:
    about = "Flower on the fleet, behind basic auth (no default password)"
    p = sub.add_parser("flower", help=about)
    p.add_argument("--port", type=int, default=None, help="default: HEIMDALL_FLOWER_PORT (5555)")
    p.add_argument("--address", default="127.0.0.1", help="interface to bind (default: loopback)")
    p.add_argument(
        "--password-file",
        metavar="FILE",
        help="without HEIMDALL_FLOWER_PASSWORD: the password kept in FILE, made at random (mode "
        "0600) the first time (the Procfile's way)",
    )
    p.set_defaults(func=cmd_flower)


def cmd_flower(args: argparse.Namespace) -> int:
    import secrets

    settings = get_settings()
    password = settings.flower_password
    if not password and args.password_file:
        password = _password_from(Path(args.password_file), settings.flower_user)
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


def _password_from(path: Path, user: str) -> str:
    """The password kept in ``path``; a new random one (written with mode 0600) the first
    time, so a local Procfile run has Flower behind a password no one chose by default."""
    import secrets

    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18) + "\n")
        print(f"heimdall flower: a new password for user {user!r} is in {path}", file=sys.stderr)
    else:
        print(f"heimdall flower: user {user!r}, password in {path}", file=sys.stderr)
    return path.read_text().strip()
