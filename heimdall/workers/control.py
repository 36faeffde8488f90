"""Remote control of a node's models: the ``heimdall_reload`` broadcast command and SIGHUP.

Both run in the node's main process (:class:`heimdall.workers.reload.NodeModels` does the
verifying); the children swap on their own, between tasks. After a reload to a version the node
did not serve, it also consumes that version's queues and announces the version, so jobs that
ask for it by name reach it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import platforms
from celery.worker.control import control_command

from heimdall.config import get_settings
from heimdall.config.celery import queue_options
from heimdall.telemetry import metrics
from heimdall.workers.reload import node_models

log = logging.getLogger(__name__)

RELOAD_COMMAND = "heimdall_reload"


@control_command(
    name=RELOAD_COMMAND,
    args=[("version", str)],
    signature="[version]",
    help="verify a model version and make it this node's default; children swap between tasks",
)
def heimdall_reload(state: Any, version: str | None = None, **_: Any) -> dict:
    reply = reload_node(version, consumer=state.consumer)
    reply["node"] = state.hostname
    return reply


def reload_node(version: str | None, consumer: Any = None) -> dict:
    """Reload this node to ``version`` (None: the current default, re-read from disk)."""
    shared = node_models()
    if shared is None:
        return {"ok": False, "version": version, "error": "this node serves no reloadable models"}
    settings = get_settings()
    reply = shared.reload(version, settings)
    if metrics.current() is not None:
        metrics.current().model_reloads.labels(result="ok" if reply["ok"] else "refused").inc()
    if not reply["ok"]:
        return reply
    try:
        shared.announce(redis.Redis.from_url(settings.redis_url), settings)
    except redis.RedisError as exc:  # the periodic announcement catches up
        log.warning("could not announce the reloaded version: %s", exc)
    if consumer is not None:
        options = queue_options(settings)
        for queue in settings.worker_queues([reply["version"]]):
            consumer.call_soon(consumer.add_task_queue, queue, None, None, None, **options)
        reply["children"] = int(getattr(consumer.pool, "num_processes", 0) or 0)
    return reply


def install_sighup_reload() -> None:
    """SIGHUP re-verifies and reloads the current version (Celery's default would re-exec
    the whole node, dropping its children's sessions at once)."""

    def on_sighup(*_: object) -> None:
        threading.Thread(target=_reload_logged, name="sighup-reload", daemon=True).start()

    platforms.signals["SIGHUP"] = on_sighup


def _reload_logged() -> None:
    reply = reload_node(None)
    if reply["ok"]:
        log.info("SIGHUP: reloaded %s (generation %s)", reply["version"], reply["generation"])
    else:
        log.error(
            "SIGHUP: reload refused, still serving %s: %s", reply.get("serving"), reply["error"]
        )
