"""Prometheus metric families of a worker node, in prometheus-client multiprocess mode; observed
by the tasks (results), the broker (dead letters) and the workers (reloads, sessions), served by
``heimdall.workers.exporter``.

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
ELLIPSE_BUCKETS_M = (100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5)
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerMetrics:
    """The metric families; created in the main process, observed in the children."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

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
        for result in ("ok", "refused"):
            self.model_reloads.labels(result=result)
        self.ellipse_semi_major = Histogram(
            "heimdall_ellipse_semi_major_meters",
            "Semi-major axis of the ellipse of each ok result, meters.",
            buckets=ELLIPSE_BUCKETS_M,
        )
        self.in_progress = Gauge(
            "heimdall_jobs_in_progress",
            "Jobs being computed now (all children of the node).",
            multiprocess_mode="livesum",
        )
        self.worker_up = Gauge(
            "heimdall_worker_up", "1 while the node's main process runs.", multiprocess_mode="max"
        )
        self.dead_letters = Counter(
            "heimdall_dead_letters_total",
            "Queue messages refused and kept as dead letters, by reason.",
            ["reason"],
        )
        # labelled series exist from the start (at 0), so dashboards and alerts see them
        for reason in ("too_large", "not_json", "not_envelope", "bad_task_id", "bad_headers"):
            self.dead_letters.labels(reason=reason)
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
        ellipse = body.get("ellipse") or {}
        if body.get("status") == "ok" and ellipse.get("semi_major_m") is not None:
            self.ellipse_semi_major.observe(ellipse["semi_major_m"])
        if body.get("cache") == "hit":
            self.cache_hits.inc()
        elif body.get("cache") == "miss":
            self.cache_misses.inc()
        for stage, ms in (body.get("timings_ms") or {}).items():
            if stage in STAGES and ms is not None:
                self.stage_seconds.labels(stage=stage).observe(ms / 1000.0)


_metrics: WorkerMetrics | None = None


def current() -> WorkerMetrics | None:
    """This process's metric families: None where metrics are off (or outside a node)."""
    return _metrics


def install() -> WorkerMetrics:
    """Create the families (a node's main process, before it forks its children)."""
    global _metrics
    _metrics = WorkerMetrics()
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


def after_child_exit(pid: int) -> None:
    if _metrics is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
