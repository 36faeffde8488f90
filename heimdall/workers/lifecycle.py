"""Worker lifecycle hooks, named by when they run.

``before_worker_boot`` (main process): verify every served model's manifest and sha256, and
import the heavy numerics once so children start fast; no ONNX session exists yet.
``after_child_fork`` (each prefork child): create the ONNX sessions, once, for every task the
child will run. ``after_task_return``: count the job in the metrics. ``before_child_exit``:
drop the sessions.
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
from heimdall.inference.localizer import default_worker_name
from heimdall.inference.model import load_model_files
from heimdall.inference.registry import ModelRegistry, install_registry
from heimdall.schemas.errors import ModelIntegrityError
from heimdall.workers import logs, metrics

log = logging.getLogger(__name__)


@signals.worker_init.connect
def before_worker_boot(**_: object) -> None:
    logs.install()
    settings = get_settings()
    versions = list(dict.fromkeys([settings.default_model, *settings.serve_models]))
    for version in versions:
        try:
            files = load_model_files(Path(settings.models_dir) / version)
        except ModelIntegrityError as exc:
            # Celery logs and swallows a signal handler's exceptions: SystemExit stops the node,
            # non-zero, before any child forks (DESIGN §8.13).
            log.critical("model %s refused, the node stops: %s", version, exc)
            raise SystemExit(2) from exc
        log.info("model %s verified (sha256 %s…)", version, files.manifest.onnx_sha256[:12])
    _advertise(settings, versions)
    metrics.before_worker_boot(settings)
    import librosa.filters  # noqa: F401  -- pay the import once, before the fork
    import onnxruntime  # noqa: F401


def _advertise(settings: Settings, versions: list[str]) -> None:
    """Announce the served versions now and every ``advertise_interval_s`` (producers route
    a job to a version's queue only while some node announced it recently)."""
    client = redis.Redis.from_url(settings.redis_url)

    def announce() -> None:
        client.zadd(settings.served_models_key, dict.fromkeys(versions, time.time()))

    def keep_announcing() -> None:
        while True:
            time.sleep(settings.advertise_interval_s)
            try:
                announce()
            except redis.RedisError as exc:
                log.warning("could not announce served models: %s", exc)

    announce()
    threading.Thread(target=keep_announcing, name="advertise-models", daemon=True).start()


@signals.worker_process_init.connect
def after_child_fork(**_: object) -> None:
    logs.install()
    settings = get_settings()
    registry = ModelRegistry.for_settings(settings, default_worker_name())
    install_registry(registry)
    if metrics.current() is not None:
        metrics.current().session_loads.inc(len(registry.versions))
    try:
        client = redis.Redis.from_url(settings.redis_url)
        client.hincrby(settings.session_loads_key, default_worker_name(), 1)
    except redis.RedisError as exc:  # bookkeeping only; the child can still serve
        log.warning("could not record session load: %s", exc)
    log.info("child %s loaded ONNX sessions for %s", default_worker_name(), registry.versions)


@signals.task_postrun.connect
def after_task_return(retval: object = None, **_: object) -> None:
    """Count the finished job (a duplicate that was ignored or retried returns no dict)."""
    if isinstance(retval, dict) and metrics.current() is not None:
        metrics.current().observe_result(retval)


@signals.worker_process_shutdown.connect
def before_child_exit(pid: int | None = None, **_: object) -> None:
    install_registry(None)
    metrics.after_child_exit(pid or os.getpid())
