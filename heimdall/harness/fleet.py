"""A whole fleet on this machine, for the demo, the bench, chaos, memory, the figure scripts and
the fleet tests: Redis (given, the configured one when it answers, or a private
``redis-server``), worker nodes whose environment comes from :class:`Settings`, a producer
and a result listener that is up before the first submit.

    with LocalFleet(get_settings(), redis="configured-or-private") as fleet:
        fleet.start_node(concurrency=2)
        with fleet.listener() as heard:
            handles = fleet.producer.submit_many(jobs)
            heard.wait_for({h.job_id for h in handles}, timeout_s=60)
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Literal

import redis

from heimdall.client import Producer, ResultFeed, ResultListener
from heimdall.config import Settings, redacted_url
from heimdall.harness.node import WorkerProcess, node_env
from heimdall.harness.redis_server import PrivateRedis, reachable

RedisChoice = Literal["given", "private", "configured-or-private"]


class LocalFleet:
    """Redis, worker nodes and clients of one fleet on this machine; a context manager."""

    def __init__(
        self,
        settings: Settings,
        redis_choice: RedisChoice = "private",
        log_dir: Path | None = None,
        appendonly: bool = False,
    ) -> None:
        """``redis_choice``: ``given`` uses ``settings.redis_url`` as it is; ``private`` starts
        a ``redis-server`` of its own (``appendonly``: fsynced AOF, for kill -9 and restart);
        ``configured-or-private`` uses the configured Redis when it answers."""
        self.requested = settings
        self.redis_choice = redis_choice
        self.appendonly = appendonly
        self.server: PrivateRedis | None = None
        self.nodes: list[WorkerProcess] = []
        self._stack = contextlib.ExitStack()
        self._log_dir = log_dir
        self.settings = settings
        self._producer: Producer | None = None
        self._feed: ResultFeed | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalFleet:
        url = self.requested.redis_url
        if self.redis_choice == "private" or (
            self.redis_choice == "configured-or-private" and not reachable(url)
        ):
            self.server = self._stack.enter_context(PrivateRedis(appendonly=self.appendonly))
            url = self.server.url
        self.settings = self.requested.model_copy(update={"redis_url": url})
        if self._log_dir is None:
            temp = tempfile.TemporaryDirectory(prefix="heimdall-fleet-")
            self._log_dir = Path(self._stack.enter_context(temp))
        return self

    @property
    def redis_note(self) -> str:
        """Which Redis this fleet uses, for people."""
        url = redacted_url(self.settings.redis_url)
        if self.server is not None:
            return f"a private redis-server at {url}"
        return f"Redis at {url} (keys under '{self.settings.key_prefix}:')"

    @property
    def log_dir(self) -> Path:
        assert self._log_dir is not None, "start the fleet first"
        return self._log_dir

    def start_node(
        self,
        concurrency: int | None = None,
        name: str | None = None,
        ready_timeout_s: float = 60.0,
        **env: str,
    ) -> WorkerProcess:
        """Start a worker node and wait until it answers; ``env``: ``HEIMDALL_*`` values this
        node alone runs with (everything else comes from the fleet's settings)."""
        n = len(self.nodes)
        node = WorkerProcess(
            self.settings, concurrency or self.settings.concurrency, env,
            log_path=self.log_dir / f"node{n}.log", name=name,
        )  # fmt: skip
        self.nodes.append(node)
        node.start(ready_timeout_s)
        return node

    def live_nodes(self) -> list[WorkerProcess]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def stop_nodes(self, timeout_s: float = 60.0) -> list[int]:
        """Warm shutdown of every node (running jobs finish); their exit codes."""
        codes = [node.stop(timeout_s) for node in self.nodes]
        self.nodes.clear()
        return codes

    def close(self) -> None:
        try:
            self.stop_nodes()
        finally:
            self._stack.close()

    def __enter__(self) -> LocalFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients -----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process of this fleet (a node, ``heimdall status``…)."""
        return node_env(self.settings)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.settings)
        return self._producer

    @property
    def feed(self) -> ResultFeed:
        """One feed per fleet: a subscription lives as long as its client (redis-py closes a
        client's connections when the client is collected)."""
        if self._feed is None:
            self._feed = ResultFeed(self.settings)
        return self._feed

    @property
    def redis(self) -> redis.Redis:
        return self.producer.redis

    def listener(self) -> ResultListener:
        """A result listener, subscribed when returned (start it before submitting)."""
        return ResultListener(self.settings).start()
