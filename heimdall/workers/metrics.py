"""Prometheus metrics of a worker node, in prometheus-client multiprocess mode.

Prefork children each write their own files under ``PROMETHEUS_MULTIPROC_DIR``; the node's main
process serves their sum on ``/metrics``. Base units, no job-id labels (DESIGN §8.10).
prometheus_client picks its multiprocess value class when first imported, so ``heimdall
worker`` sets the directory (:func:`prepare_multiprocess_dir`) before Celery starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from heimdall.config import Settings

log = logging.getLogger(__name__)

STAGES = ("queue", "fetch", "features", "inference", "total")
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerMetrics:
    """The metric families; created in the main process, observed in the children."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.stage_seconds = Histogram(
            "heimdall_job_stage_seconds",
            "Time a job spent in each stage, seconds.",
            ["stage"],
            buckets=BUCKETS_S,
        )
        self.jobs = Counter(
            "heimdall_jobs_total",
            "Jobs finished, by status, error code, model version and method.",
            ["status", "code", "model", "method"],
        )
        self.cache_hits = Counter(
            "heimdall_cache_hits_total", "Jobs answered from the result cache."
        )
        self.cache_misses = Counter(
            "heimdall_cache_misses_total", "Jobs looked up in the result cache and computed."
        )
        self.model_reloads = Counter(
            "heimdall_model_reloads_total",
            "Reload commands a node answered, by result (ok: verified, refused: kept serving).",
            ["result"],
        )
        self.session_loads = Counter(
            "heimdall_session_loads_total",
            "ONNX sessions created (one per served model per child).",
        )

    def observe_result(self, body: dict[str, Any]) -> None:
        """Count one finished job from its ``heimdall.result/1`` dict."""
        error = body.get("error") or {}
        self.jobs.labels(
            status=body.get("status", "unknown"),
            code=error.get("code", ""),
            model=body.get("model_version") or "",
            method=body.get("method") or "",
        ).inc()
        if body.get("cache") == "hit":
            self.cache_hits.inc()
        elif body.get("cache") == "miss":
            self.cache_misses.inc()
        for stage, ms in (body.get("timings_ms") or {}).items():
            if stage in STAGES and ms is not None:
                self.stage_seconds.labels(stage=stage).observe(ms / 1000.0)


_metrics: WorkerMetrics | None = None


def current() -> WorkerMetrics | None:
    return _metrics


def prepare_multiprocess_dir(settings: Settings) -> None:
    """Point prometheus_client at a fresh per-node directory; call before anything imports it
    (Celery's command line imports Flower's plugin, which imports prometheus_client)."""
    if settings.metrics_port is None:
        return
    directory = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="heimdall-metrics-"))
    shutil.rmtree(directory, ignore_errors=True)  # files of a previous node run are stale
    os.makedirs(directory, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def before_worker_boot(settings: Settings) -> None:
    """Create the metrics and serve ``/metrics`` from the node's main process."""
    global _metrics
    if settings.metrics_port is None:
        log.info("metrics disabled (HEIMDALL_METRICS_PORT unset)")
        return
    directory = os.environ.get(MULTIPROC_ENV)
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    if directory is None or values.ValueClass.__name__ != "MmapedValue":
        log.warning(
            "metrics disabled: start workers with `heimdall worker`, which sets %s "
            "before prometheus_client is imported",
            MULTIPROC_ENV,
        )
        return
    _metrics = WorkerMetrics()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_address, registry=registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_address, settings.metrics_port)
    except OSError as exc:  # e.g. a second node on this host: it still works, unexported
        log.warning(
            "metrics port %d unavailable (%s); this node's metrics are not served",
            settings.metrics_port,
            exc,
        )


def after_child_exit(pid: int) -> None:
    if _metrics is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
