"""Worker lifecycle hooks, named by when they run.

``before_worker_boot`` (main process): verify every served model's manifest and sha256, share
the node's serving state with the children to come (:mod:`heimdall.workers.reload`), and import
the heavy numerics once so children start fast; no ONNX session exists yet.
``after_worker_ready`` (main process): SIGHUP reloads models instead of re-executing the node;
``/readyz`` starts asking the children.
``after_child_fork`` (each prefork child): create the ONNX sessions the node serves now, and
watch for reloads. ``before_task_start`` / ``after_task_return``: a reload is applied between
tasks; the finished job is counted in the metrics. ``before_child_exit``: drop the sessions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import redis
from celery import signals

from heimdall.config import Settings, get_settings
from heimdall.inference.model import load_model_files
from heimdall.inference.registry import install_registry, process_registry
from heimdall.schemas.errors import ModelIntegrityError
from heimdall.schemas.result import worker_id
from heimdall.telemetry import metrics
from heimdall.workers import exporter, logs
from heimdall.workers.control import install_sighup_reload
from heimdall.workers.endpoints import readiness
from heimdall.workers.reload import (
    NodeModels,
    Serving,
    child_models,
    forget_child,
    install_node_models,
    node_models,
    start_child,
)

log = logging.getLogger(__name__)


@signals.worker_init.connect
def before_worker_boot(sender: object = None, **_: object) -> None:
    logs.install()
    settings = get_settings()
    serving = Serving(settings.default_model, list(settings.serve_models))
    versions = serving.versions
    for version in versions:
        try:
            files = load_model_files(Path(settings.models_dir) / version)
        except ModelIntegrityError as exc:
            # Celery logs and swallows a signal handler's exceptions: SystemExit stops the node,
            # non-zero, before any child forks (DESIGN §8.13).
            log.critical("model %s refused, the node stops: %s", version, exc)
            raise SystemExit(2) from exc
        log.info("model %s verified (sha256 %s…)", version, files.manifest.onnx_sha256[:12])
    install_node_models(NodeModels(serving, str(getattr(sender, "hostname", "local"))))
    _advertise(settings)
    exporter.before_worker_boot(settings)
    import onnxruntime  # noqa: F401  -- pay the import once, before the fork


def _advertise(settings: Settings) -> None:
    """Announce the served versions now and every ``advertise_interval_s`` (producers route
    a job to a version's queue only while some node announced it recently); after a reload
    the new version is announced at the next beat."""
    client = redis.Redis.from_url(settings.redis_url)
    shared = node_models()

    def keep_announcing() -> None:
        while True:
            time.sleep(settings.advertise_interval_s)
            try:
                shared.announce(client, settings)
            except redis.RedisError as exc:
                log.warning("could not announce served models: %s", exc)

    shared.announce(client, settings)
    threading.Thread(target=keep_announcing, name="advertise-models", daemon=True).start()


@signals.worker_ready.connect
def after_worker_ready(sender: object = None, **_: object) -> None:
    install_sighup_reload()
    if (checks := readiness()) is not None:
        checks.consumer = sender  # /readyz: the consumer is up; now the children decide


@signals.worker_shutdown.connect
def after_worker_stop(**_: object) -> None:
    """A node stopping (warm shutdown) serves nothing from now on: producers stop routing to
    versions only it served, without waiting for its word to age."""
    shared = node_models()
    if shared is None or shared.main_pid != os.getpid():
        return
    settings = get_settings()
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=2.0).hdel(
            settings.served_by_key, shared.node
        )
    except redis.RedisError as exc:  # its word ages out after three announce intervals
        log.warning("could not withdraw the served versions: %s", exc)


@signals.worker_process_init.connect
def after_child_fork(**_: object) -> None:
    logs.install()
    settings = get_settings()
    start_child(settings)
    registry = process_registry()
    if metrics.current() is not None:
        metrics.current().session_loads.inc(len(registry.versions))
    try:
        client = redis.Redis.from_url(settings.redis_url)
        client.hincrby(settings.session_loads_key, worker_id(), 1)
    except redis.RedisError as exc:  # bookkeeping only; the child can still serve
        log.warning("could not record session load: %s", exc)
    log.info("child %s loaded ONNX sessions for %s", worker_id(), registry.versions)


@signals.task_prerun.connect
def before_task_start(**_: object) -> None:
    if (child := child_models()) is not None:
        child.before_task()
    if metrics.current() is not None:
        metrics.current().in_progress.inc()


@signals.task_postrun.connect
def after_task_return(**_: object) -> None:
    """The task is no longer in progress (its jobs were counted as they were published);
    apply a reload that arrived while it ran."""
    if metrics.current() is not None:
        metrics.current().in_progress.dec()
    if (child := child_models()) is not None:
        child.after_task()


@signals.worker_process_shutdown.connect
def before_child_exit(pid: int | None = None, **_: object) -> None:
    forget_child()
    install_registry(None)
    metrics.after_child_exit(pid or os.getpid())
