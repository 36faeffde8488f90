"""``/metrics`` of a worker node: the children's metric files summed by the main process, and
the queue lengths read from the broker at scrape time, beside ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import logging
import os

from heimdall.broker.queues import queue_lengths
from heimdall.config import Settings
from heimdall.telemetry import metrics
from heimdall.telemetry.metrics import MULTIPROC_ENV
from heimdall.workers.endpoints import serve_endpoints

log = logging.getLogger(__name__)


def before_worker_boot(settings: Settings) -> None:
    """Create the metrics and serve ``/metrics`` from the node's main process."""
    if settings.metrics_port is None:
        log.info("metrics disabled (HEIMDALL_METRICS_PORT unset)")
        return
    directory = os.environ.get(MULTIPROC_ENV)
    from prometheus_client import CollectorRegistry, values
    from prometheus_client.multiprocess import MultiProcessCollector

    if directory is None or values.ValueClass.__name__ != "MmapedValue":
        log.warning(
            "metrics disabled: start workers with `heimdall worker`, which sets %s "
            "before prometheus_client is imported",
            MULTIPROC_ENV,
        )
        return
    metrics.install().worker_up.set(1)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    registry.register(QueueLengths(settings))
    try:
        serve_endpoints(settings, registry)
        log.info(
            "metrics, /healthz and /readyz on http://%s:%d",
            settings.metrics_address,
            settings.metrics_port,
        )
    except OSError as exc:  # e.g. a second node on this host: it still works, unexported
        log.warning(
            "metrics port %d unavailable (%s); this node's metrics are not served",
            settings.metrics_port,
            exc,
        )


class QueueLengths:
    """``heimdall_queue_length{queue}``: jobs waiting in each queue this node consumes, read
    from the broker at scrape time (what an autoscaler such as KEDA watches)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "heimdall_queue_length", "Jobs waiting in a queue (broker count).", labels=["queue"]
        )
        try:
            for queue, length in queue_lengths(self.settings).items():
                family.add_metric([queue], float(length))
        except Exception as exc:  # a scrape must not fail because the broker is away
            log.warning("queue lengths unavailable: %s", exc)
        yield family
