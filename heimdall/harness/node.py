"""One ``heimdall worker`` node started as a child process of the harness: start, wait until it
answers, stop (warm). Its environment is derived from :class:`Settings` in one place
(:meth:`Settings.as_env`), so the node runs the settings its starter holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from heimdall.config import Settings
from heimdall.config.celery import celery_app


def node_env(settings: Settings, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its own ``HEIMDALL_*`` settings, then ``settings``
    as environment, then ``overrides``."""
    fields = {f"HEIMDALL_{name.upper()}" for name in type(settings).model_fields}
    inherited = {k: v for k, v in os.environ.items() if k not in fields}
    return {**inherited, **settings.as_env(), **(overrides or {})}


class WorkerProcess:
    """One Celery worker node (``concurrency`` prefork children) running ``heimdall worker``."""

    def __init__(
        self,
        settings: Settings,
        concurrency: int,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        name: str | None = None,
    ) -> None:
        """``env``: ``HEIMDALL_*`` values that differ from ``settings`` on purpose (a test's
        node with a shorter busy retry, another model); everything else comes from
        ``settings``."""
        self.settings = settings
        self.concurrency = concurrency
        self.env = node_env(settings, env)
        self.name = name or f"heimdall-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self, ready_timeout_s: float = 60.0) -> WorkerProcess:
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 -- closed in stop()
            out = self._log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "heimdall.cli",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--name",
                self.name,
                "--loglevel",
                "INFO",
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready(ready_timeout_s)
        return self

    @property
    def node_name(self) -> str:
        return self.name.replace("%h", os.uname().nodename)

    def wait_ready(self, timeout_s: float) -> None:
        """Until the node answers a control ping (its children have booted by then)."""
        app = celery_app(self.settings, "heimdall-control")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited with code {self.process.returncode}")
                replies = app.control.ping(destination=[self.node_name], timeout=0.5)
                if replies:
                    return
            raise TimeoutError(f"worker {self.node_name} not ready after {timeout_s} s")
        finally:
            app.close()

    def child_pids(self) -> list[int]:
        """Pids of the node's prefork children (Linux ``/proc``); none once it has exited."""
        if self.process is None:
            return []
        pid = self.process.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self, timeout_s: float = 60.0) -> int:
        """Warm shutdown (SIGTERM): running jobs finish; returns the exit code."""
        code = 0
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
