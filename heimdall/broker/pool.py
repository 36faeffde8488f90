"""The prefork pool of a worker node, tolerant of a child lost while the node boots.

Celery's prefork pool checks once, right after the consumer starts, that no child has exited
yet, and stops the whole node (``WorkerLostError('Could not start worker processes')``) if one
has, e.g. killed by an operator or the OOM killer while it loaded its ONNX session. A child
lost at any later time is simply replaced by the pool's maintenance; here the same happens
during boot (DESIGN §8.13).
"""

from __future__ import annotations

import logging

from celery.concurrency.prefork import TaskPool

log = logging.getLogger(__name__)


class PreforkPool(TaskPool):
    """Celery's prefork pool (``worker_pool``) whose boot check replaces a lost child instead
    of failing the node; ``did_start_ok`` and billiard's ``_pool`` are listed in
    ``heimdall.broker.internals``."""

    def did_start_ok(self) -> bool:
        if not super().did_start_ok():
            log.warning("a pool child exited while the node booted; it is being replaced")
            self._pool.maintain_pool()
        return True
