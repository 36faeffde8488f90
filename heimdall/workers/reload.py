"""Hot reload of a node's models (DESIGN §12; Triton's explicit model control is the anchor).

The node's main process owns the *desired* serving state (default version and extras) and a
generation counter, both in shared memory created before the pool forks, so every child — the
first ones and those forked later — sees them. ``heimdall reload`` (the ``heimdall_reload``
broadcast control command) or SIGHUP makes the main process verify the new model (manifest and
sha256) and, only if it verifies, publish the new state and bump the generation; a model that
fails leaves everything as it was and the reply says why.

Each child swaps its sessions *between tasks*: before a task starts, after one ends, and when
idle from a watcher thread, all under one lock and never while a task runs, so none is dropped.
A child whose own load fails keeps its old sessions and says so. Every child records what it
serves in ``{prefix}:serving`` (``heimdall status``, ``heimdall reload``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from heimdall.config import Settings
from heimdall.inference.model import load_model_files
from heimdall.inference.registry import ModelRegistry, install_registry, process_registry
from heimdall.schemas.result import worker_id

log = logging.getLogger(__name__)

STATE_BYTES = 4096
WATCH_INTERVAL_S = 0.2


@dataclass
class Serving:
    """What a node should serve: its default version and the extra ones."""

    default: str
    extra: list[str] = field(default_factory=list)

    @property
    def versions(self) -> list[str]:
        return list(dict.fromkeys([self.default, *self.extra]))


class NodeModels:
    """The node's desired serving state and its generation, shared with every child."""

    def __init__(self, serving: Serving, node: str) -> None:
        self.node = node
        self.main_pid = os.getpid()
        self._generation = multiprocessing.Value("q", 1)
        self._state = multiprocessing.Array("c", STATE_BYTES)
        self._write(serving)

    @property
    def generation(self) -> int:
        return int(self._generation.value)

    def serving(self) -> Serving:
        with self._state.get_lock():
            return Serving(**json.loads(self._state.value.decode()))

    def _write(self, serving: Serving) -> None:
        encoded = json.dumps(asdict(serving)).encode()
        if len(encoded) >= STATE_BYTES:
            raise ValueError(f"serving state of {len(encoded)} bytes is too large")
        with self._state.get_lock():
            self._state.value = encoded

    def announce(self, client: redis.Redis, settings: Settings) -> None:
        """Tell producers which versions this node serves now (they route by it): the node's
        entry replaces what it said before, so a version reloaded away is unserved at once."""
        entry = {"versions": self.serving().versions, "at": time.time()}
        client.hset(settings.served_by_key, self.node, json.dumps(entry))

    def reload(self, version: str | None, settings: Settings) -> dict:
        """Verify ``version`` (default: the current one, re-read from disk) and make it the
        node's default; the reply names what happened. Main process only."""
        current = self.serving()
        target = version or current.default
        try:
            files = load_model_files(Path(settings.models_dir) / target)
        except Exception as exc:  # a missing, unreadable or altered model: keep serving
            log.error("reload to %s refused: %s", target, exc)
            return {"ok": False, "version": target, "serving": current.default, "error": str(exc)}
        extra = [v for v in current.extra if v != target]
        self._write(Serving(target, extra))
        with self._generation.get_lock():
            self._generation.value += 1
        log.info(
            "reload: %s verified (sha256 %s…), generation %d; children swap between tasks",
            target, files.manifest.onnx_sha256[:12], self.generation,
        )  # fmt: skip
        return {
            "ok": True,
            "version": target,
            "previous": current.default,
            "sha256": files.manifest.onnx_sha256,
            "generation": self.generation,
        }


_node: NodeModels | None = None


def install_node_models(node_models: NodeModels | None) -> None:
    global _node
    _node = node_models


def node_models() -> NodeModels | None:
    return _node


class ChildModels:
    """A child's side: swap the registry when the node's generation moves on."""

    def __init__(self, shared: NodeModels, settings: Settings) -> None:
        self.shared = shared
        self.settings = settings
        self.generation = 0
        self.busy = False
        self.lock = threading.Lock()
        self.client = redis.Redis.from_url(settings.redis_url)

    def load(self) -> None:
        """Load what the node serves now (at child start); raises if it cannot."""
        with self.lock:
            generation, serving = self.shared.generation, self.shared.serving()
            install_registry(self._registry(serving))
            self.generation = generation
            self._record(serving.versions, None)

    def before_task(self) -> None:
        """A task is about to run: catch up with the node first, then mark the child busy."""
        with self.lock:
            self._catch_up()
            self.busy = True

    def after_task(self) -> None:
        with self.lock:
            self.busy = False
            self._catch_up()

    def watch(self) -> None:
        """Swap an idle child promptly; a busy one swaps after its task (never during one)."""

        def run() -> None:
            while True:
                time.sleep(WATCH_INTERVAL_S)
                try:
                    with self.lock:
                        if not self.busy:
                            self._catch_up()
                except Exception:  # never let the watcher die silently
                    log.exception("model watcher")

        threading.Thread(target=run, name="model-watcher", daemon=True).start()

    def _catch_up(self) -> None:
        """Load the node's new state if it moved on (lock held); on failure keep serving the
        old sessions, say so, and wait for the next reload."""
        generation = self.shared.generation
        if generation == self.generation:
            return
        serving = self.shared.serving()
        self.generation = generation
        try:
            registry = self._registry(serving)
        except Exception as exc:
            log.error("child %s keeps %s: %s", worker_id(), _versions(), exc)
            self._record(_versions(), f"{serving.default}: {exc}")
            return
        install_registry(registry)
        log.info("child %s now serves %s", worker_id(), registry.versions)
        self._record(registry.versions, None)

    def _registry(self, serving: Serving) -> ModelRegistry:
        s = self.settings
        return ModelRegistry(
            s.models_dir, serving.default, serving.extra, worker_id(), s.max_job_samples
        )

    def _record(self, versions: list[str], error: str | None) -> None:
        entry = {
            "node": self.shared.node,
            "pid": os.getpid(),
            "versions": versions,
            "generation": self.generation,
            "error": error,
            "at": time.time(),
        }
        try:
            self.client.hset(self.settings.serving_key, worker_id(), json.dumps(entry))
        except redis.RedisError as exc:  # bookkeeping only
            log.warning("could not record what this child serves: %s", exc)


def _versions() -> list[str]:
    registry = process_registry()
    return registry.versions if registry else []


_child: ChildModels | None = None


def start_child(settings: Settings) -> ChildModels:
    """In a freshly forked child: load the node's current models and watch for reloads."""
    global _child
    shared = node_models()
    if shared is None:  # not under a heimdall worker node (e.g. a bare pool): boot settings
        shared = NodeModels(Serving(settings.default_model, settings.serve_models), "local")
        install_node_models(shared)
    _child = ChildModels(shared, settings)
    _child.load()
    _child.watch()
    return _child


def child_models() -> ChildModels | None:
    return _child


def forget_child() -> None:
    global _child
    _child = None
