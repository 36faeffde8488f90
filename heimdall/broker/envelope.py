"""Queue items as kombu envelopes: screening what a Redis queue holds before kombu parses it,
and building the envelope of a task message the way a producer that does not import Celery
does (the README's protocol-2 message).

kombu's Redis channel ``json.loads`` a popped queue item and builds a ``Message`` from it in the
worker's main process; an item that is not JSON, not an object, nested too deep or missing the
envelope's fields raises there, outside anything Celery catches, and stops the node (the item
is already popped, so it is lost too). :func:`screen_envelope` looks at each item first: a
well-formed kombu envelope passes unchanged, anything else is replaced by a *refusal envelope*
— a valid, empty message whose headers carry the reason and the start of the raw item — which
``heimdall.broker.gate`` turns into a dead letter.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from heimdall.config.celery import PACK_TASK_NAME, TASK_NAME
from heimdall.schemas.job import nesting_depth

REFUSED_HEADER = "x-heimdall-refused"  # reason code
DETAIL_HEADER = "x-heimdall-detail"
RAW_HEADER = "x-heimdall-raw"  # at most RAW_KEEP_CHARS of the item
RAW_BYTES_HEADER = "x-heimdall-raw-bytes"
RAW_KEEP_CHARS = 4096
MAX_ENVELOPE_DEPTH = 32
MAX_ITEM_BYTES = 512 * 2**20  # above any allowed job (Settings.max_message_bytes is lower)
KNOWN_BODY_ENCODINGS = ("base64", "utf-8", None)


class EnvelopeError(ValueError):
    """A queue item that is not a usable kombu message; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check_envelope(item: bytes | str) -> dict[str, Any]:
    """The parsed envelope of a queue item, or :class:`EnvelopeError` saying what is wrong."""
    if len(item) > MAX_ITEM_BYTES:
        raise EnvelopeError("too_large", f"message of {len(item)} bytes")
    try:
        text = item.decode("utf-8") if isinstance(item, bytes) else item
        envelope = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("not_json", f"message is not JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError("too_deep", "message nests too deep to parse") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("not_envelope", f"message is a JSON {type(envelope).__name__}")
    if nesting_depth(envelope, MAX_ENVELOPE_DEPTH) > MAX_ENVELOPE_DEPTH:
        raise EnvelopeError("too_deep", f"envelope nests deeper than {MAX_ENVELOPE_DEPTH}")
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        raise EnvelopeError("not_envelope", "envelope has no 'properties' object")
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        raise EnvelopeError("not_envelope", "properties.delivery_tag must be a non-empty string")
    info = properties.get("delivery_info")
    if not (
        isinstance(info, dict)
        and isinstance(info.get("exchange"), str)
        and isinstance(info.get("routing_key"), str)
    ):
        raise EnvelopeError(
            "not_envelope", "properties.delivery_info needs string exchange and routing_key"
        )
    _check_fields(envelope, properties)
    return envelope


def _check_fields(envelope: dict[str, Any], properties: dict[str, Any]) -> None:
    headers = envelope.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise EnvelopeError("not_envelope", "headers must be an object")
    for name in ("content-type", "content-encoding"):
        if envelope.get(name) is not None and not isinstance(envelope.get(name), str):
            raise EnvelopeError("not_envelope", f"{name} must be a string")
    encoding = properties.get("body_encoding")
    if encoding not in KNOWN_BODY_ENCODINGS:
        raise EnvelopeError("not_envelope", f"unknown properties.body_encoding {encoding!r}")
    body = envelope.get("body")
    if body is not None and not isinstance(body, str):
        raise EnvelopeError("not_envelope", "body must be a string")
    if body and encoding == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("bad_body_encoding", "body is not valid base64") from None


def refusal_envelope(item: bytes | str, queue: str, error: EnvelopeError) -> str:
    """A valid, empty kombu message standing for the unusable ``item``."""
    raw = item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item
    return json.dumps(
        {
            "body": "",
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {
                REFUSED_HEADER: error.reason,
                DETAIL_HEADER: str(error)[:500],
                RAW_HEADER: raw[:RAW_KEEP_CHARS],
                RAW_BYTES_HEADER: len(item),
            },
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": queue},
                "body_encoding": "utf-8",
            },
        }
    )


def screen_envelope(item: bytes | str, queue: str) -> tuple[bytes | str, str]:
    """``(item, delivery tag)`` if kombu can parse it, else a refusal envelope for it."""
    try:
        envelope = check_envelope(item)
    except EnvelopeError as error:
        refusal = refusal_envelope(item, queue, error)
        return refusal, json.loads(refusal)["properties"]["delivery_tag"]
    return item, envelope["properties"]["delivery_tag"]




def task_envelope(
    body: bytes,
    queue: str,
    task: str,
    task_id: str | None,
    origin: str = "heimdall-raw-producer",
) -> str:
    """A kombu envelope (what a Redis queue holds) of a Celery protocol-2 task message with
    ``body`` as its raw bytes: the README's message of a producer that does not import Celery."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": task, "id": task_id, "root_id": task_id,
                "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
                "timelimit": [None, None], "origin": origin,
            },
            "properties": {
                "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
            },
        }
    )  # fmt: skip


def task_body(argument: object) -> bytes:
    """The ``[args, kwargs, embed]`` body of a task taking one ``argument``."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([[argument], {}, embed]).encode()


def job_message(job: dict, queue: str, origin: str = "heimdall-raw-producer") -> str:
    """The envelope of a ``heimdall.localize`` message for ``job`` (task id = its job id)."""


    return task_envelope(task_body(job), queue, TASK_NAME, job["job_id"], origin)


def pack_message(jobs: list[dict], queue: str, origin: str = "heimdall-raw-producer") -> str:
    """The envelope of a ``heimdall.localize_pack`` message of ``jobs``, as the producer packs
    bulk jobs (a pack's task id is its own)."""


    return task_envelope(task_body(jobs), queue, PACK_TASK_NAME, str(uuid.uuid4()), origin)
