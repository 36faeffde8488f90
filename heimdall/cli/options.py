"""What several verbs share: choices taken from the schema types (never retyped), the model
directory of a version, reading a JSON-lines file of jobs, and argument types."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

from heimdall.config import get_settings
from heimdall.schemas.job import Datatype, Method, Priority
from heimdall.schemas.simulation import NetworkKind, SignalKind, TdoaNetwork

DATATYPES: tuple[str, ...] = get_args(Datatype)
METHODS: tuple[str, ...] = get_args(Method)
PRIORITIES: tuple[str, ...] = get_args(Priority)
RSS_NETWORKS: tuple[str, ...] = get_args(NetworkKind)
TDOA_NETWORKS: tuple[str, ...] = get_args(TdoaNetwork)
NETWORKS: tuple[str, ...] = tuple(dict.fromkeys(RSS_NETWORKS + TDOA_NETWORKS))
SIGNALS: tuple[str, ...] = get_args(SignalKind)
SIM_KINDS = ("rss", "tdoa")  # heimdall.sim.jobs.KINDS (not imported: the simulator is heavy)
JSON_HELP = "print one heimdall.result/1 JSON object per line instead of a table"


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero (its message names what was given)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return value


def model_dir(version: str | None) -> Path:
    """The directory of model ``version`` (default: ``Settings.default_model``)."""
    settings = get_settings()
    return settings.models_dir / (version or settings.default_model)


def read_jobs_file(path: str) -> Iterator[tuple[dict, tuple[float, float] | None]]:
    """``(job dict, truth or None)`` per line of a JSON-lines file (``heimdall simulate`` output
    or bare jobs); exits naming the file and line of a bad one."""
    try:
        fh = open(path)  # noqa: SIM115 -- a with block below, after the error message
    except OSError as exc:
        raise SystemExit(f"{path}: {exc.strerror}") from exc
    with fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{line_no}: not JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise SystemExit(f"{path}:{line_no}: expected a JSON object")
            truth = record.get("truth")
            yield record.get("job", record), (truth["lat"], truth["lon"]) if truth else None
