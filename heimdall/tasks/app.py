"""The Celery application of the fleet (``celery -A heimdall.tasks.app``)."""

from __future__ import annotations

from heimdall.config import get_settings
from heimdall.config.celery import PACK_TASK_NAME, TASK_NAME, celery_app

# Imported by name in the worker's main process before it forks, so the per-child ONNX
# session hooks are connected however the worker was started (heimdall worker, celery -A).
WORKER_IMPORTS = ("heimdall.tasks.localize", "heimdall.tasks.pack", "heimdall.workers.lifecycle")

app = celery_app(get_settings(), "heimdall", WORKER_IMPORTS)

__all__ = ["PACK_TASK_NAME", "TASK_NAME", "app"]
