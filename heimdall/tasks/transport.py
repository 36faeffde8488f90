"""The Redis broker transport: every message claimed atomically and screened before kombu parses it.

kombu's Redis channel ``json.loads`` a popped queue item and builds a ``Message`` from it in the
worker's main process; an item that is not JSON, not an object, nested too deep or missing the
envelope's fields raises there, outside anything Celery catches, and stops the node (the item
is already popped, so it is lost too). :func:`screen_envelope` looks at each item first: a
well-formed kombu envelope passes unchanged, anything else is replaced by a *refusal envelope*
— a valid, empty message whose headers carry the reason and the start of the raw item — which
``heimdall.tasks.gate`` turns into a dead letter.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import uuid
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from heimdall.schemas.job import nesting_depth

logger = logging.getLogger(__name__)

REFUSED_HEADER = "x-heimdall-refused"  # reason code
DETAIL_HEADER = "x-heimdall-detail"
RAW_HEADER = "x-heimdall-raw"  # at most RAW_KEEP_CHARS of the item
RAW_BYTES_HEADER = "x-heimdall-raw-bytes"
RAW_KEEP_CHARS = 4096
MAX_ENVELOPE_DEPTH = 32
MAX_ITEM_BYTES = 512 * 2**20  # above any allowed job (Settings.max_message_bytes is lower)
KNOWN_BODY_ENCODINGS = ("base64", "utf-8", None)


class EnvelopeError(ValueError):
    """A queue item that is not a usable kombu message; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check_envelope(item: bytes | str) -> dict[str, Any]:
    """The parsed envelope of a queue item, or :class:`EnvelopeError` saying what is wrong."""
    if len(item) > MAX_ITEM_BYTES:
        raise EnvelopeError("too_large", f"message of {len(item)} bytes")
    try:
        text = item.decode("utf-8") if isinstance(item, bytes) else item
        envelope = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("not_json", f"message is not JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError("too_deep", "message nests too deep to parse") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("not_envelope", f"message is a JSON {type(envelope).__name__}")
    if nesting_depth(envelope, MAX_ENVELOPE_DEPTH) > MAX_ENVELOPE_DEPTH:
        raise EnvelopeError("too_deep", f"envelope nests deeper than {MAX_ENVELOPE_DEPTH}")
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        raise EnvelopeError("not_envelope", "envelope has no 'properties' object")
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        raise EnvelopeError("not_envelope", "properties.delivery_tag must be a non-empty string")
    info = properties.get("delivery_info")
    if not (
        isinstance(info, dict)
        and isinstance(info.get("exchange"), str)
        and isinstance(info.get("routing_key"), str)
    ):
        raise EnvelopeError(
            "not_envelope", "properties.delivery_info needs string exchange and routing_key"
        )
    _check_fields(envelope, properties)
    return envelope


def _check_fields(envelope: dict[str, Any], properties: dict[str, Any]) -> None:
    headers = envelope.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise EnvelopeError("not_envelope", "headers must be an object")
    for name in ("content-type", "content-encoding"):
        if envelope.get(name) is not None and not isinstance(envelope.get(name), str):
            raise EnvelopeError("not_envelope", f"{name} must be a string")
    encoding = properties.get("body_encoding")
    if encoding not in KNOWN_BODY_ENCODINGS:
        raise EnvelopeError("not_envelope", f"unknown properties.body_encoding {encoding!r}")
    body = envelope.get("body")
    if body is not None and not isinstance(body, str):
        raise EnvelopeError("not_envelope", "body must be a string")
    if body and encoding == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("bad_body_encoding", "body is not valid base64") from None


def refusal_envelope(item: bytes | str, queue: str, error: EnvelopeError) -> str:
    """A valid, empty kombu message standing for the unusable ``item``."""
    raw = item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item
    return json.dumps(
        {
            "body": "",
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {
                REFUSED_HEADER: error.reason,
                DETAIL_HEADER: str(error)[:500],
                RAW_HEADER: raw[:RAW_KEEP_CHARS],
                RAW_BYTES_HEADER: len(item),
            },
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": queue},
                "body_encoding": "utf-8",
            },
        }
    )


def screen_envelope(item: bytes | str, queue: str) -> tuple[bytes | str, str]:
    """``(item, delivery tag)`` if kombu can parse it, else a refusal envelope for it."""
    try:
        envelope = check_envelope(item)
    except EnvelopeError as error:
        refusal = refusal_envelope(item, queue, error)
        return refusal, json.loads(refusal)["properties"]["delivery_tag"]
    return item, envelope["properties"]["delivery_tag"]


CLAIM_GRACE_S = 10.0
WAIT_S = 0.25  # longest block on one queue while the worker also consumes others

# KEYS: claimed hash, claimed index, then the queues in order. ARGV: now (s), claim id.
CLAIM_LUA = """
for i = 3, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    redis.call('HSET', KEYS[1], ARGV[2], KEYS[i] .. '\\0' .. item)
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
    return {i - 3, item}
  end
end
return false
"""

# KEYS: claimed hash, claimed index. ARGV: claims at or before this time (s) go back.
SWEEP_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], 0, ARGV[1])
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    local sep = string.find(entry, '\\0', 1, true)
    redis.call('RPUSH', string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1))
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #ids
"""


class _ScreeningClient:
    """Mixin for kombu's Redis clients: screen what RPOP (``basic_get``) returns."""

    def rpop(self, name, count=None):
        item = super().rpop(name, count) if count is not None else super().rpop(name)
        if item is None or count is not None:
            return item
        return screen_envelope(item, str(name))[0]


class ScreeningRedis(_ScreeningClient, redis.Redis):
    pass


class ScreeningPrefixedRedis(_ScreeningClient, kombu_redis.PrefixedStrictRedis):
    pass


class ClaimingQoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        super().append(message, delivery_tag)  # now in kombu's unacked hash: restorable
        self.channel.release_claim(delivery_tag)

    def restore_visible(self, *args, **kwargs):
        self.channel.sweep_claims()
        return super().restore_visible(*args, **kwargs)


class ScreeningChannel(kombu_redis.Channel):
    QoS = ClaimingQoS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._claims: dict[str, str] = {}  # delivery tag → claim id, until kombu recorded it
        self._waiting = False  # the outstanding poll is a BLMOVE wait, not a claim

    def _key(self, name: str) -> str:
        return f"{self.global_keyprefix}{name}"

    def _brpop_start(self, timeout=None):
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self._polled = [self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]
        keys = [self._key(k) for k in self._polled]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        if self._waiting:
            wait_s = min(timeout or 1, WAIT_S) if len(keys) > 1 else (timeout or 1)
            # Block on an interactive queue when there is one: its latency is the one promised;
            # of several (a node serving more versions), the default model's, whose name is
            # the shortest; the others are polled every WAIT_S.
            interactive = [k for k in keys if ".interactive" in k]
            watched = min(interactive, key=len) if interactive else keys[0]
            command = ["BLMOVE", watched, watched, "RIGHT", "RIGHT", wait_s]
        else:
            self._claim_id = uuid.uuid4().hex
            claimed = [self._key("claimed"), self._key("claimed_index")]
            command = ["EVAL", CLAIM_LUA, len(keys) + 2, *claimed, *keys, time(), self._claim_id]
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options):
        try:
            try:
                reply = self.client.parse_response(
                    self.client.connection, "BLMOVE" if self._waiting else "EVAL", **options
                )
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if self._waiting:  # something arrived (or the wait timed out): claim next
                self._waiting = False
                raise Empty()
            if not reply:
                self._waiting = True
                raise Empty()
            index, item = reply
            queue_key = self._polled[int(index)]
            dest = queue_key.rsplit(self.sep, 1)[0]
            screened, tag = screen_envelope(item, dest)
            self._claims[tag] = self._claim_id
            self._queue_cycle.rotate(dest)
            self.connection._deliver(json.loads(screened), dest)
            return True
        finally:
            self._in_poll = None
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)  # as kombu's own read
            if flush_reauth is not None:
                flush_reauth()

    def release_claim(self, delivery_tag: str) -> None:
        claim = self._claims.pop(delivery_tag, None)
        if claim is not None:
            # A pipeline takes its own pooled connection (self.client's may be in BLMOVE);
            # the client adds the key prefix.
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel("claimed", claim)
            pipe.zrem("claimed_index", claim)
            pipe.execute()

    def sweep_claims(self) -> None:
        """Push back messages claimed by a worker that died before recording them."""
        keys = [self._key("claimed"), self._key("claimed_index")]
        # Not self.client: its one connection may be waiting in BLMOVE.
        with self.conn_or_acquire() as client:
            restored = client.execute_command("EVAL", SWEEP_LUA, 2, *keys, time() - CLAIM_GRACE_S)
        if restored:
            logger.warning("%d message(s) claimed by a lost worker pushed back", restored)

    def _get_client(self):
        super()._get_client()  # keeps kombu's redis-py version check
        if self.global_keyprefix:
            return functools.partial(ScreeningPrefixedRedis, global_keyprefix=self.global_keyprefix)
        return ScreeningRedis


class ScreeningRedisTransport(kombu_redis.Transport):
    """``broker_transport`` of the fleet when the broker is Redis."""

    Channel = ScreeningChannel
