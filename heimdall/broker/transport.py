"""The Redis broker transport: every job message *message-claimed* atomically, screened before
kombu parses it, and control replies kept from leaking.

kombu's Redis channel pops a message with BRPOP and only then records it in its unacked hash;
a process (or Redis) that dies between the two loses the message. Here one Lua script pops the
message and records a *message claim* (``{prefix}:claimed``, indexed by time in
``{prefix}:claimed_index``) in one step; the claim is released once kombu's QoS has recorded
the message as unacked (from then on kombu restores it). A claim older than
``CLAIM_GRACE_S`` belongs to a process that died in between, and any node's sweep pushes its
message back. (A *job claim*, ``heimdall.store.claims``, is another thing: which child
computes a job.)

Control-plane queues are not job queues: a ``heimdall status`` client's reply list
(``<uuid>.reply.celery.pidbox``) is consumed without acks by a short-lived process. Its
messages are popped without a message claim (a reply lost with its client is lost with the
only one who wanted it), and every reply list gets an expiry when a reply is written, so a
reply nobody reads does not stay in Redis forever.

Private kombu names used here are listed in ``heimdall.broker.internals``.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from queue import Empty
from time import monotonic, time

import redis
from kombu.transport import redis as kombu_redis

from heimdall.broker.envelope import screen_envelope

logger = logging.getLogger(__name__)

CLAIMED_HASH = "claimed"  # message claims: claim id → queue NUL item
CLAIMED_INDEX = "claimed_index"  # claim id → when it was taken (s)
CLAIM_GRACE_S = 10.0
WAIT_S = 0.25  # longest block on one queue while the worker also consumes others
REPLY_LIST_TTL_MS = 60_000  # a control reply nobody read within a minute is of no use

# KEYS: claimed hash, claimed index, then the queues in order. ARGV: now (s), claim id, one
# flag per queue ('1': message-claim what it pops; '0': a control reply, just pop).
CLAIM_LUA = """
for i = 3, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    if string.sub(ARGV[3], i - 2, i - 2) == '1' then
      redis.call('HSET', KEYS[1], ARGV[2], KEYS[i] .. '\\0' .. item)
      redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
    end
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


def is_reply_queue(name: str) -> bool:
    """Whether ``name`` is a control client's reply queue (Celery's ``<oid>.reply.<ns>.pidbox``,
    with or without kombu's priority suffix)."""
    return ".reply." in name and ".pidbox" in name


class _ScreeningClient:
    """Mixin for kombu's Redis clients: screen what RPOP (``basic_get``) returns."""

    def rpop(self, name, count=None):
        item = super().rpop(name, count) if count is not None else super().rpop(name)
        if item is None or count is not None:
            return item
        return screen_envelope(item, str(name))[0]


class ScreeningRedis(_ScreeningClient, redis.Redis):
    """redis-py's client whose RPOP screens what it returns."""


class ScreeningPrefixedRedis(_ScreeningClient, kombu_redis.PrefixedStrictRedis):
    """kombu's key-prefixing client whose RPOP screens what it returns."""


class ClaimingQoS(kombu_redis.QoS):
    """kombu's QoS that releases a message's claim once the message is in the unacked hash,
    and sweeps expired message claims whenever kombu restores unacked messages."""

    def append(self, message, delivery_tag):
        super().append(message, delivery_tag)  # now in kombu's unacked hash: restorable
        self.channel.release_message_claim(delivery_tag)

    def restore_visible(self, *args, **kwargs):
        self.channel.sweep_message_claims()
        return super().restore_visible(*args, **kwargs)


class ScreeningChannel(kombu_redis.Channel):
    """kombu's Redis channel with message claims, screening, and reply lists that expire.

    Replaces kombu's private ``_brpop_start``/``_brpop_read`` pair (a blocking BRPOP, then
    delivery) with: while messages wait, one claim script per read (pop + message claim in one
    step); when a claim finds nothing, one blocking ``BLMOVE`` of a queue onto itself (which
    moves nothing: it only wakes the channel when something arrives), then claim again. The
    item is screened (``heimdall.broker.envelope``) before kombu parses it. Also replaces
    ``_get_client`` (clients whose RPOP screens) and extends ``_put`` (reply lists expire).
    """

    QoS = ClaimingQoS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._message_claims: dict[str, str] = {}  # delivery tag → claim id, until recorded
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
            claimed = [self._key(CLAIMED_HASH), self._key(CLAIMED_INDEX)]
            flags = "".join("0" if is_reply_queue(k) else "1" for k in self._polled)
            command = ["EVAL", CLAIM_LUA, len(keys) + 2, *claimed, *keys,
                       time(), self._claim_id, flags]  # fmt: skip
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
            if not is_reply_queue(queue_key):
                self._message_claims[tag] = self._claim_id
            self._queue_cycle.rotate(dest)
            self.connection._deliver(json.loads(screened), dest)
            # A consumer without acks never records the message as unacked (kombu's QoS
            # sees only acked consumers): its claim is released here, not swept back later.
            self.release_message_claim(tag)
            return True
        finally:
            self._in_poll = None
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)  # as kombu's own read
            if flush_reauth is not None:
                flush_reauth()

    def _put(self, queue, message, **kwargs):
        batch = kwargs.get("_publish_batch")
        super()._put(queue, message, **kwargs)
        if not is_reply_queue(queue):
            return
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
        if batch is not None:  # the LPUSH is queued in the batch: so is its expiry
            for key in keys:
                batch.add("pexpire", key, REPLY_LIST_TTL_MS)
            return
        with self.conn_or_acquire() as client:
            for key in keys:
                client.pexpire(key, REPLY_LIST_TTL_MS)

    def release_message_claim(self, delivery_tag: str) -> None:
        """Drop the message claim of ``delivery_tag`` (if it still has one)."""
        claim = self._message_claims.pop(delivery_tag, None)
        if claim is not None:
            # A pipeline takes its own pooled connection (self.client's may be in BLMOVE);
            # the client adds the key prefix.
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(CLAIMED_HASH, claim)
            pipe.zrem(CLAIMED_INDEX, claim)
            pipe.execute()

    def sweep_message_claims(self) -> None:
        """Push back messages claimed by a process that died before kombu recorded them."""
        keys = [self._key(CLAIMED_HASH), self._key(CLAIMED_INDEX)]
        # Not self.client: its one connection may be waiting in BLMOVE.
        with self.conn_or_acquire() as client:
            restored = client.execute_command("EVAL", SWEEP_LUA, 2, *keys, time() - CLAIM_GRACE_S)
        if restored:
            logger.warning(
                "%d message(s) claimed by a process that died before recording them pushed back",
                restored,
            )

    def _get_client(self):
        super()._get_client()  # keeps kombu's redis-py version check
        if self.global_keyprefix:
            return functools.partial(ScreeningPrefixedRedis, global_keyprefix=self.global_keyprefix)
        return ScreeningRedis


class ScreeningRedisTransport(kombu_redis.Transport):
    """``broker_transport`` of the fleet when the broker is Redis."""

    Channel = ScreeningChannel
