"""Consumers: live results from pub/sub, and catch-up from the durable stream."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import redis

from heimdall.config import Settings, get_settings
from heimdall.schemas.result import Result


class ResultFeed:
    """Results as the fleet publishes them (``subscribe``) or as the stream kept them."""

    def __init__(
        self, settings: Settings | None = None, redis_client: redis.Redis | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.redis = redis_client or redis.Redis.from_url(self.settings.redis_url)

    def subscribe(self, timeout_s: float | None = None) -> Iterator[Result]:
        """Yield live results from ``{prefix}:results`` (at-most-once: only while listening).

        Stops after ``timeout_s`` without a message when given; runs forever otherwise.
        The subscription is active when the first ``next()`` starts waiting; use
        :meth:`open_subscription` to subscribe before submitting.
        """
        pubsub = self.open_subscription()
        try:
            yield from self.listen(pubsub, timeout_s)
        finally:
            pubsub.close()

    def open_subscription(self) -> redis.client.PubSub:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.settings.results_channel)
        return pubsub

    @staticmethod
    def listen(pubsub: redis.client.PubSub, timeout_s: float | None = None) -> Iterator[Result]:
        """Results from an open subscription; stops after ``timeout_s`` of silence if given."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_s = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            # None also comes back for the (ignored) subscribe confirmation: not a timeout
            message = pubsub.get_message(timeout=wait_s)
            if message is not None and message.get("type") == "message":
                yield Result.model_validate_json(message["data"])
                if timeout_s is not None:
                    deadline = time.monotonic() + timeout_s
            elif deadline is not None and time.monotonic() >= deadline:
                return

    def read_stream(
        self, after_id: str = "0-0", count: int = 500, block_ms: int | None = None
    ) -> Iterator[tuple[str, Result]]:
        """Yield ``(entry_id, result)`` after ``after_id`` until the stream is drained.

        Keep the last ``entry_id`` and pass it next time to miss nothing between runs.
        With ``block_ms`` it waits that long for new entries before stopping.
        """
        stream = self.settings.results_stream
        last = after_id
        while True:
            batch = self.redis.xread({stream: last}, count=count, block=block_ms)
            if not batch:
                return
            for entry_id, fields in batch[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if b"result" in fields:  # batch summaries (kind = batch) share the stream
                    yield last, Result.model_validate_json(fields[b"result"])

    def latest(self, count: int) -> list[tuple[str, Result]]:
        """The latest ``count`` stream entries' results, oldest first (summaries skipped)."""
        entries = self.redis.xrevrange(self.settings.results_stream, count=count)
        return [
            (entry_id.decode(), Result.model_validate_json(fields[b"result"]))
            for entry_id, fields in reversed(entries)
            if b"result" in fields
        ]

    def batch_summaries(self, after_id: str = "0-0") -> Iterator[tuple[str, dict]]:
        """``(entry_id, summary)`` of every batch summary on the stream after ``after_id``."""
        for entry_id, fields in self.redis.xrange(self.settings.results_stream, min=f"({after_id}"):
            if fields.get(b"kind") == b"batch":
                yield entry_id.decode(), json.loads(fields[b"summary"])


class ResultListener:
    """Every result published on pub/sub while it listens, heard by a background thread that
    reconnects at once when Redis goes away (results published meanwhile are missed: pub/sub is
    at-most-once; the stream keeps them all).

    Keeps each job's first receipt time (``time.time()``, seconds) and raw result, and how
    often each job id was heard; results are parsed only when asked for (:meth:`result`), so
    a reader that counts and times thousands of them pays no validation. Start it before the
    first submit: :meth:`start` returns once subscribed.
    """

    def __init__(self, settings: Settings | None = None, reconnect_s: float = 0.02) -> None:
        self.settings = settings or get_settings()
        self.reconnect_s = reconnect_s
        self.received: dict[str, tuple[float, bytes]] = {}
        self.heard: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-listener", daemon=True)

    def start(self, timeout_s: float = 10.0) -> ResultListener:
        self._thread.start()
        if not self._subscribed.wait(timeout_s):
            channel = self.settings.results_channel
            raise TimeoutError(f"no subscription to {channel} within {timeout_s} s")
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=0.5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.settings.results_channel)
                self._subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message and message.get("type") == "message":
                        self._heard(message["data"])
                pubsub.close()
            except (redis.RedisError, OSError):
                self._stop.wait(self.reconnect_s)

    def _heard(self, data: bytes) -> None:
        job_id = json.loads(data).get("job_id")
        with self._changed:
            self.heard[job_id] += 1
            self.received.setdefault(job_id, (time.time(), data))
            self._changed.notify_all()

    def result(self, job_id: str) -> Result:
        """The first result heard for ``job_id`` (KeyError if none was)."""
        return Result.model_validate_json(self.received[job_id][1])

    def wait_for(
        self, job_ids: set[str], timeout_s: float, on_count: Callable[[int], None] | None = None
    ) -> bool:
        """Until every one of ``job_ids`` was heard (True) or ``timeout_s`` passed (False);
        ``on_count(n)`` is told how many were heard, as they arrive (a progress bar)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                done = len(job_ids & self.received.keys())
                if on_count is not None:
                    on_count(done)
                left_s = deadline - time.monotonic()
                if done == len(job_ids) or left_s <= 0:
                    return done == len(job_ids)
                self._changed.wait(min(left_s, 1.0))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> ResultListener:
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
