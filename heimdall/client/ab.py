"""A/B splits (DESIGN §12): which model version a ``default`` job is sent to.

The split ``{version: weight}`` comes from Redis (``heimdall ab set``, read by producers on
every submission) or, when none is set there, from ``Settings.ab_split``. The arm is a
deterministic function of the job id and the split: the same job id always gets the same arm.
A fraction of A/B jobs (the same way, from another part of the id's hash) is marked ``shadow``:
workers that serve the other arms score it with them too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from heimdall.config import Settings

SHADOW_FIELD = ":shadow"  # the hash field holding the shadow fraction (no version has a colon)


@dataclass(frozen=True)
class Split:
    weights: dict[str, float]  # version → weight (> 0)
    shadow_fraction: float
    source: str  # "redis", "settings" or "none"

    def arm(self, job_id: str, served: set[str] | None = None) -> str | None:
        """The version for ``job_id`` among the arms some node serves (``served``), or None
        when no arm is served or there is no split."""
        arms = {v: w for v, w in self.weights.items() if served is None or v in served}
        return arm_of(job_id, arms)

    def shadow(self, job_id: str) -> bool:
        return _unit(job_id, 1) < self.shadow_fraction


def arm_of(job_id: str, weights: Mapping[str, float]) -> str | None:
    """Version whose share of [0, 1) holds the job id's hash; versions in name order."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return None
    u = _unit(job_id, 0) * total
    edge = 0.0
    arms = sorted(v for v, w in weights.items() if w > 0)
    for version in arms:
        edge += weights[version]
        if u < edge:
            return version
    return arms[-1]


def _unit(job_id: str, part: int) -> float:
    """A number in [0, 1) from 8 bytes (``part``) of the SHA-256 of the job id."""
    digest = hashlib.sha256(job_id.encode()).digest()
    return int.from_bytes(digest[8 * part : 8 * part + 8], "big") / 2**64


def parse_weights(items: list[str]) -> dict[str, float]:
    """``["v1=0.9", "v2=0.1"]`` → ``{"v1": 0.9, "v2": 0.1}``; ValueError naming the bad item."""
    weights: dict[str, float] = {}
    for item in items:
        version, sep, value = item.partition("=")
        if not sep or not version or ":" in version:
            raise ValueError(f"{item!r}: expected VERSION=WEIGHT, e.g. v1=0.9")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: weight {value!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"{item!r}: weight must be a finite number ≥ 0")
        weights[version] = weight
    if sum(weights.values()) <= 0:
        raise ValueError("at least one weight must be > 0")
    return weights


def read_split(client: redis.Redis, settings: Settings) -> Split:
    """The split in force: Redis's when set there, else Settings'."""
    stored = {k.decode(): float(v) for k, v in client.hgetall(settings.ab_split_key).items()}
    shadow = stored.pop(SHADOW_FIELD, None)
    weights = {v: w for v, w in stored.items() if w > 0}
    if weights:
        fraction = settings.ab_shadow_fraction if shadow is None else shadow
        return Split(weights, fraction, "redis")
    weights = {v: w for v, w in settings.ab_split.items() if w > 0}
    return Split(weights, settings.ab_shadow_fraction, "settings" if weights else "none")


def write_split(
    client: redis.Redis, settings: Settings, weights: dict[str, float], shadow: float | None
) -> None:
    """Replace the run-time split atomically (producers see it on their next submission)."""
    fields = {v: repr(w) for v, w in weights.items()}
    if shadow is not None:
        fields[SHADOW_FIELD] = repr(shadow)
    pipe = client.pipeline(transaction=True)
    pipe.delete(settings.ab_split_key)
    pipe.hset(settings.ab_split_key, mapping=fields)
    pipe.execute()


def clear_split(client: redis.Redis, settings: Settings) -> None:
    client.delete(settings.ab_split_key)
