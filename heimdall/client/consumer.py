"""Consumers: live results from pub/sub, and catch-up from the durable stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

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
