"""A node's HTTP endpoints, served by its main process: ``/metrics`` (Prometheus),
``/healthz`` (the process answers) and ``/readyz`` (it can serve jobs), for Kubernetes probes
and compose healthchecks.

Ready means: the consumer is up (Celery's ``worker_ready``), the broker answers a PING, and every
live child has loaded the node's current models (its record in ``{prefix}:serving`` is at the
node's generation). So a node is *not* ready while it boots or while a reload is being applied;
a child whose own load failed still serves its old models and counts as ready (the body says so).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis

from heimdall.config import Settings
from heimdall.workers.reload import node_models

log = logging.getLogger(__name__)


class Readiness:
    """What ``/readyz`` checks; ``consumer`` is set once the node is ready to consume."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: Any = None
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )

    def check(self) -> tuple[bool, dict]:
        if self.consumer is None:
            return False, {"ready": False, "why": "booting: the consumer is not up yet"}
        try:
            self.redis.ping()
            records = self.redis.hvals(self.settings.serving_key)
        except redis.RedisError as exc:
            return False, {"ready": False, "why": f"the broker does not answer: {exc}"}
        pids = self._child_pids()
        shared = node_models()
        generation = shared.generation if shared else 0
        current = {}
        for raw in records:
            record = json.loads(raw)
            if record.get("pid") in pids and record.get("generation", 0) >= generation:
                current[record["pid"]] = record
        detail = {
            "children": len(pids),
            "children_on_current_models": len(current),
            "generation": generation,
            "errors": [r["error"] for r in current.values() if r.get("error")],
        }
        if not pids:
            return False, {"ready": False, "why": "no live child", **detail}
        if len(current) < len(pids):
            return False, {"ready": False, "why": "children are loading models", **detail}
        return True, {"ready": True, **detail}

    def _child_pids(self) -> set[int]:
        try:
            return set(self.consumer.pool.info.get("processes", []))
        except Exception:  # the pool is being restarted or shut down
            return set()


_readiness: Readiness | None = None


def readiness() -> Readiness | None:
    return _readiness


def serve_endpoints(settings: Settings, registry: Any) -> ThreadingHTTPServer:
    """Serve the endpoints on ``metrics_address:metrics_port`` from a daemon thread."""
    global _readiness
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    _readiness = Readiness(settings)
    checks = _readiness

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif path == "/readyz":
                ok, detail = checks.check()
                self._send(200 if ok else 503, json.dumps(detail).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # probes every few seconds: no log lines
            pass

    server = ThreadingHTTPServer((settings.metrics_address, settings.metrics_port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="endpoints", daemon=True).start()
    return server
