"""Shadow scoring (DESIGN §12): an A/B job marked ``shadow`` is also localized by every other
version the child serves, and how far apart the two estimates are goes to a capped stream that
``heimdall ab report`` reads. A shadow estimate is never the job's result."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import redis

from heimdall.config import Settings
from heimdall.geo.enu import LocalFrame
from heimdall.inference.registry import ModelRegistry
from heimdall.schemas.job import IQJob
from heimdall.schemas.result import Result

log = logging.getLogger(__name__)


def score_shadow(
    registry: ModelRegistry,
    job: IQJob,
    iq: Mapping[int, bytes],
    primary: Result,
    client: redis.Redis,
    settings: Settings,
) -> int:
    """Localize ``job`` with the other served versions; returns how many were recorded."""
    recorded = 0
    for version, localizer in registry.localizers.items():
        if version == primary.model_version:
            continue
        other = localizer.localize(job.model_copy(update={"model": version}), iq)
        fields = {
            "job_id": job.job_id,
            "arm": primary.model_version or "",
            "other": version,
            "arm_status": primary.status,
            "other_status": other.status,
            "distance_m": _distance_m(primary, other),
        }
        client.xadd(settings.ab_shadow_key, fields, maxlen=settings.stream_maxlen, approximate=True)
        recorded += 1
    return recorded


def _distance_m(a: Result, b: Result) -> str:
    if a.position is None or b.position is None:
        return ""
    frame = LocalFrame(a.position.lat, a.position.lon)
    east, north = frame.to_enu(b.position.lat, b.position.lon)[:2]
    return f"{float(np.hypot(east, north)):.1f}"
