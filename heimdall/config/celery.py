"""Celery configuration built from :class:`Settings` (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from heimdall.config.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery ``conf`` mapping: reliable delivery, JSON only, events for Flower."""
    transport = {
        "visibility_timeout": settings.visibility_timeout_s,
        "global_keyprefix": f"{settings.key_prefix}:",
    }
    config = {
        "broker_url": settings.broker,
        "result_backend": settings.result_backend,
        # Messages of a lost node (unacked past the visibility timeout) are looked for every
        # 5 s, not kombu's default of every 10th 10 s tick.
        "broker_transport_options": {
            **transport,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": dict(transport),
        "broker_connection_retry_on_startup": True,
        # Serialization: JSON only; pickle is never accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # At-least-once delivery; tasks are idempotent on job_id.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # On a broker connection loss, running jobs go on: they ride out a Redis restart and
        # publish their result (Celery's cancel-on-loss would terminate them, then ack their
        # messages as revoked once the connection is back, dropping the jobs).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # A lost child is reported after this wait for a late result; the task publishes its
        # own results, so there is nothing to wait for: its job is requeued at once.
        "worker_lost_wait": 1.0,
        "task_soft_time_limit": settings.soft_time_limit_s,
        "task_time_limit": settings.hard_time_limit_s,
        "result_expires": settings.result_ttl_s,
        # Queues per priority; no Redis priorities.
        "task_default_queue": settings.queue("interactive"),
        "task_create_missing_queues": True,
        # Monitoring: Flower needs the workers' task events. No task-sent events: Flower lists
        # a task from its task-received, and each would cost every producer a PUBLISH per job.
        # No task_track_started: a duplicate delivery would overwrite a stored result with
        # STARTED before the idempotency check runs.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # Children load librosa filters and ONNX sessions on start; allow for a slow disk.
        "worker_proc_alive_timeout": 30.0,
        # No message can stop a node (DESIGN §8.12, §8.13): messages pass the gate before
        # the pool; Redis queue items are screened before kombu parses them; a child lost
        # while the node boots is replaced.
        "worker_consumer": "heimdall.broker.consumer:GuardedConsumer",
        "worker_pool": "heimdall.broker.pool:PreforkPool",
    }
    if settings.broker_is_redis:
        config["broker_transport"] = "heimdall.broker.transport:ScreeningRedisTransport"
    elif settings.broker_is_rabbitmq:
        # RabbitMQ: replicated quorum queues, declared durable on first use by producers and
        # workers alike; Celery turns off global QoS for them (worker_detect_quorum_queues).
        config["task_create_missing_queue_type"] = "quorum"
        config["broker_transport_options"] = {"confirm_publish": True}
        config["task_default_exchange_type"] = "topic"  # native delayed delivery (retries)
    return config


TASK_NAME = "heimdall.localize"
PACK_TASK_NAME = "heimdall.localize_pack"  # several bulk jobs in one message
PACK_MAX_JOBS = 64  # the gate refuses larger packs


def queue_options(settings: Settings) -> dict[str, Any]:
    """Arguments a queue added at run time needs to match how producers declare it."""
    if settings.broker_is_rabbitmq:
        return {"queue_arguments": {"x-queue-type": "quorum"}}
    return {}


def celery_app(settings: Settings, name: str = "heimdall", imports: tuple[str, ...] = ()):
    """A Celery app configured from ``settings``; ``imports`` are loaded by workers only."""
    from celery import Celery

    app = Celery(name)
    app.conf.update(celery_config(settings))
    app.conf.imports = imports
    return app
