"""The dead-letter list ``{prefix}:dead-letters``: messages no worker could use, kept for people.

A worker's main process refuses a message it cannot hand to the pool (not JSON, not the task's
shape, too deep, an empty task id, …: see ``heimdall.broker.gate``) and records it here with the
reason, the queue it came from and at most ``RAW_LIMIT_BYTES`` of the raw message, then acks it
so it cannot stop this node or the next one. ``heimdall dead-letters`` lists, shows, requeues
and purges them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis

from heimdall.config import Settings

RAW_LIMIT_BYTES = 4096
# Refused for what the message itself is: the gate would refuse it again. (A letter refused
# for what this fleet lacked — unknown_task, unknown_message, invalid_task, unhandled — may
# be requeued once the fleet has it.)
REFUSED_AGAIN = frozenset({
    "not_json", "not_envelope", "too_deep", "too_large", "bad_body_encoding", "bad_body_shape",
    "bad_arity", "bad_headers", "bad_task_id", "bad_pack", "content_type", "unreadable",
})  # fmt: skip


@dataclass
class DeadLetter:
    """One refused message."""

    reason: str  # short machine-friendly kind, e.g. "not_json", "bad_body_shape"
    detail: str  # what was wrong, for people
    queue: str
    raw: str  # the raw message as received (kombu envelope JSON), cut to RAW_LIMIT_BYTES
    raw_bytes: int  # its full length
    task_id: str | None = None  # the job id a failed result was published under, if any
    letter_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def complete(self) -> bool:
        """Whether ``raw`` is the whole message (only then can it be requeued)."""
        return len(self.raw.encode()) == self.raw_bytes

    @classmethod
    def of(cls, reason: str, detail: str, queue: str, raw: bytes | str, **fields) -> DeadLetter:
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        text = data[:RAW_LIMIT_BYTES].decode("utf-8", errors="replace")
        return cls(reason, detail[:1000], queue, text, len(data), **fields)


class DeadLetterBox:
    """Record, list, show, requeue and purge the fleet's dead letters (newest first)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.key = settings.dead_letters_key

    def record(self, letter: DeadLetter) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.key, json.dumps(asdict(letter)))
        pipe.ltrim(self.key, 0, self.settings.dead_letters_max - 1)
        pipe.execute()

    def list(self, limit: int = 100) -> list[DeadLetter]:
        return [_parse(item) for item in self.redis.lrange(self.key, 0, limit - 1)]

    def count(self) -> int:
        return int(self.redis.llen(self.key))

    def get(self, letter_id: str) -> DeadLetter | None:
        """The letter whose id is ``letter_id`` or starts with it (as short ids are shown)."""
        found = self._find(letter_id)
        return found[0] if found else None

    def requeue(self, letter_id: str) -> DeadLetter:
        """Push a letter's raw message back onto its queue and drop the letter.

        Raises ``LookupError`` for an unknown id and ``ValueError`` when the raw message was
        cut at ``RAW_LIMIT_BYTES`` (it cannot be rebuilt) or was refused for what it is
        (``REFUSED_AGAIN``: the gate would refuse it again)."""
        found = self._find(letter_id)
        if found is None:
            raise LookupError(f"no single dead letter with id {letter_id!r}")
        letter, item = found
        if letter.reason in REFUSED_AGAIN:
            raise ValueError(
                f"dead letter {letter.letter_id} was refused for what the message itself is "
                f"({letter.reason}: {letter.detail[:120]}); requeued, it would come straight "
                "back. Fix the producer and send the job again"
            )
        if not letter.complete:
            raise ValueError(
                f"dead letter {letter.letter_id} kept {RAW_LIMIT_BYTES} of {letter.raw_bytes} "
                "bytes of its message; it cannot be requeued"
            )
        queue_list = f"{self.settings.key_prefix}:{letter.queue}"  # kombu's global_keyprefix
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(queue_list, letter.raw)
        pipe.lrem(self.key, 1, item)
        pipe.execute()
        return letter

    def purge(self) -> int:
        """Drop every dead letter; returns how many there were."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.llen(self.key)
        pipe.delete(self.key)
        count, _ = pipe.execute()
        return int(count)

    def _find(self, letter_id: str) -> tuple[DeadLetter, bytes] | None:
        """The one letter whose id starts with ``letter_id``, with its stored item."""
        matches = []
        for item in self.redis.lrange(self.key, 0, -1):
            letter = _parse(item)
            if letter_id and letter.letter_id.startswith(letter_id):
                matches.append((letter, item))
        return matches[0] if len(matches) == 1 else None


def _parse(item: bytes) -> DeadLetter:
    return DeadLetter(**json.loads(item))
