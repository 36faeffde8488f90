"""A private ``redis-server`` on a free port in a temp dir (demo, bench, tests).

Never touches a shared Redis: it has its own port and directory; no persistence unless asked
(``appendonly=True``: an AOF fsynced on every write, so ``kill -9`` + :meth:`restart` loses
nothing acknowledged; the chaos run uses it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers PING at ``url``."""
    try:
        return bool(
            redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            ).ping()
        )
    except (redis.RedisError, OSError):
        return False


class PrivateRedis:
    """``with PrivateRedis() as r: r.url`` — started on entry, shut down on exit."""

    def __init__(
        self,
        binary: str = "redis-server",
        start_timeout_s: float = 10.0,
        appendonly: bool = False,
        password: str | None = None,
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(
                f"{binary} is not on PATH; install it (Debian: apt-get install redis-server)"
            )
        self.binary = path
        self.start_timeout_s = start_timeout_s
        self.appendonly = appendonly
        self.password = password  # requirepass: clients must AUTH
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self._dir = tempfile.TemporaryDirectory(prefix="heimdall-redis-")
        self.port = free_port()
        self._launch()
        return self

    def _launch(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.appendonly:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self._dir.name,
                "--save",
                "",
                *persistence,
                *(["--requirepass", self.password] if self.password else []),
                "--logfile",
                str(Path(self._dir.name) / "log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while not reachable(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9`` the server (its directory, and AOF if any, stay for :meth:`restart`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Start the server again on the same port and directory (reloading its AOF)."""
        self.kill()
        self._launch()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
