"""Every private or undocumented name of Celery, kombu, billiard and redis-py that Heimdall
relies on, in one list: what it is, its signature on the versions the tests passed on
(``constraints.txt``), where we use it and which guarantee rests on it.

Only modules of ``heimdall.broker`` use these names. ``tests/test_internals.py`` checks each one
against the installed libraries and fails, naming it, when an upgrade removed or changed it;
``tests/fleet`` (delivery, poison, control plane, chaos) checks the behaviour built on them.
To move a pin up: install the new versions, run ``pytest tests/test_internals.py``, fix what it
names, then the whole suite and ``heimdall chaos --jobs 1000``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["method", "instance attribute", "class"]


@dataclass(frozen=True)
class PrivateName:
    """One name we depend on: ``owner`` is ``module:Class``; ``signature`` as
    :func:`inspect.signature` prints it (methods only)."""

    owner: str
    name: str
    kind: Kind
    signature: str | None
    used_in: str
    guards: str

    @property
    def qualified(self) -> str:
        return f"{self.owner}.{self.name}"

    def problem(self) -> str | None:
        """What is wrong with this name in the installed library, or None."""
        module_name, _, class_name = self.owner.partition(":")
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            return f"{self.owner} is gone ({exc})"
        if self.kind == "instance attribute":
            source = inspect.getsource(owner)
            if not re.search(rf"self\.{re.escape(self.name)}\s*=", source):
                return f"{self.qualified} is no longer set by {class_name}"
            return None
        member = getattr(owner, self.name, None)
        if member is None:
            return f"{self.qualified} is gone"
        if self.kind == "method":
            found = str(inspect.signature(member))
            if found != self.signature:
                return f"{self.qualified} changed: {found}, was {self.signature}"
        return None


KOMBU_REDIS = "kombu.transport.redis"
TRANSPORT = "heimdall.broker.transport"
NO_LOST_MESSAGE = "no message lost between pop and unacked record (message claims)"

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    # -- kombu's Redis channel: claim, screen and deliver each message ----------------------
    PrivateName(f"{KOMBU_REDIS}:Channel", "_brpop_start", "method", "(self, timeout=None)",
                TRANSPORT, f"replaced: {NO_LOST_MESSAGE}"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_brpop_read", "method", "(self, **options)",
                TRANSPORT, f"replaced: {NO_LOST_MESSAGE}; a non-message never reaches kombu"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_q_for_pri", "method", "(self, queue, pri)",
                TRANSPORT, "the Redis list of a queue at a priority step"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_get_client", "method", "(self)",
                TRANSPORT, "replaced: basic_get's RPOP screens what it pops"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_put", "method", "(self, queue, message, **kwargs)",
                TRANSPORT, "extended: control reply lists expire (no control-plane leak)"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_flush_brpop_reauth", "method", "(self)",
                TRANSPORT, "called after a read, as kombu's own read does (optional)"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_queue_cycle", "instance attribute", None,
                TRANSPORT, "fair rotation over queues, as kombu's BRPOP"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_in_poll", "instance attribute", None,
                TRANSPORT, "kombu's marker of an outstanding poll (reconnects, cancels)"),
    PrivateName(f"{KOMBU_REDIS}:Channel", "_brpop_sent_at", "instance attribute", None,
                TRANSPORT, "kombu's poll-health clock"),
    PrivateName("kombu.transport.virtual.base:Transport", "_deliver", "method",
                "(self, message, queue)", TRANSPORT, "hands a claimed message to its consumer"),
    PrivateName(f"{KOMBU_REDIS}:QoS", "append", "method", "(self, message, delivery_tag)",
                TRANSPORT, "extended: a message claim is released once kombu recorded it"),
    PrivateName(f"{KOMBU_REDIS}:QoS", "restore_visible", "method",
                "(self, start=0, num=10, interval=10)", TRANSPORT,
                "extended: expired message claims are swept back with kombu's restore"),
    PrivateName(f"{KOMBU_REDIS}:PrefixedStrictRedis", "__init__", "method",
                "(self, *args, **kwargs)", TRANSPORT,
                "undocumented class: the key-prefixing client our screening client extends"),
    # -- Celery's worker: the gate, events, lost children, revokes ---------------------------
    PrivateName("celery.worker.consumer:Consumer", "create_task_handler", "method",
                "(self, promise=<class 'vine.promises.promise'>)", "heimdall.broker.consumer",
                "wrapped: every message passes the gate before Celery builds a request"),
    PrivateName("celery.worker.consumer:Consumer", "_flush_events", "method", "(self)",
                "heimdall.broker.consumer", "task events sent in batches (Flower), and at stop"),
    PrivateName("celery.worker.consumer:Consumer", "on_send_event_buffered", "method", "(self)",
                "heimdall.broker.consumer", "replaced: events flushed every 20 ms, not per loop"),
    PrivateName("celery.worker.request:Request", "_announce_revoked", "method",
                "(self, reason, terminated, signum, expired)", "heimdall.broker.request",
                "an expired or revoked job still gets its failed result"),
    PrivateName("celery.worker.request:Request", "on_failure", "method",
                "(self, exc_info, send_failed_event=True, return_ok=False)",
                "heimdall.broker.request", "a lost child's job claims are released at once"),
    PrivateName("celery.worker.request:Request", "on_timeout", "method", "(self, soft, timeout)",
                "heimdall.broker.request", "a job past the hard limit gets its failed result"),
    PrivateName("celery.concurrency.prefork:TaskPool", "did_start_ok", "method", "(self)",
                "heimdall.broker.pool", "a child lost while the node boots is replaced"),
    PrivateName("celery.concurrency.prefork:TaskPool", "_pool", "instance attribute", None,
                "heimdall.broker.pool", "billiard's pool, asked to replace the lost child"),
    # -- Celery's result backend: results stored in its format, in our publication script ---
    PrivateName("celery.backends.base:Backend", "_get_result_meta", "method",
                "(self, result, state, traceback, request, format_date=True, encode=False)",
                "heimdall.broker.results", "results stored exactly as Celery stores them"),
    # -- redis-py: blobs written without a copy ----------------------------------------------
    PrivateName("redis.connection:PythonRespSerializer", "__init__", "method",
                "(self, buffer_cutoff, encode) -> None", "heimdall.broker.blobwriter",
                "undocumented class: large IQ blobs sent without a copy (producer CPU)"),
)


def problems() -> list[str]:
    """What an installed library changed of the names above (empty: all as pinned)."""
    return [p for name in PRIVATE_NAMES if (p := name.problem()) is not None]
