"""How many jobs wait in each queue, on either broker: a Redis list's length, or a RabbitMQ
queue's message count (a passive declare, which creates nothing)."""

from __future__ import annotations

import redis

from heimdall.config import Settings


def queue_lengths(settings: Settings, queues: list[str] | None = None) -> dict[str, int]:
    """Waiting messages per queue (default: the queues a node of ``settings`` consumes); a
    queue that does not exist yet counts 0."""
    names = queues or settings.worker_queues()
    if settings.broker_is_rabbitmq:
        return _rabbitmq(settings.broker, names)
    client = redis.Redis.from_url(settings.broker, socket_timeout=2.0, socket_connect_timeout=2.0)
    return {name: int(client.llen(f"{settings.key_prefix}:{name}")) for name in names}


def _rabbitmq(url: str, names: list[str]) -> dict[str, int]:
    from amqp.exceptions import NotFound
    from kombu import Connection

    lengths = {}
    with Connection(url, connect_timeout=2.0) as connection:
        channel = connection.channel()
        for name in names:
            try:
                lengths[name] = int(channel.queue_declare(name, passive=True).message_count)
            except NotFound:  # the broker closed the channel: open another
                lengths[name] = 0
                channel = connection.channel()
        channel.close()
    return lengths
