"""The result contract ``heimdall.result/1``: position, covariance and ellipse, or an error."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heimdall.schemas.errors import ErrorCode

RESULT_SCHEMA = "heimdall.result/1"


class Position(BaseModel):
    lat: float
    lon: float


class Ellipse(BaseModel):
    """Uncertainty ellipse; ``orientation_deg`` is the major axis azimuth, clockwise from north."""

    confidence: float
    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float = Field(ge=0.0, lt=180.0)


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str


class Timings(BaseModel):
    """Milliseconds spent per stage; stages a caller did not run stay ``None``."""

    queue: float | None = None
    fetch: float | None = None
    features: float | None = None
    inference: float | None = None
    tdoa: float | None = None
    total: float | None = None


class Alternative(BaseModel):
    """Another likelihood mode (e.g. the second hyperbola crossing of a 3-station fix), with
    its own covariance and ellipse (TDoA; absent from older results)."""

    lat: float
    lon: float
    relative_likelihood: float
    covariance_en_m2: list[list[float]] | None = None
    ellipse: Ellipse | None = None


class PairEvidence(BaseModel):
    """One receiver pair: arrival at ``a`` minus arrival at ``b``."""

    a: str
    b: str
    delay_s: float
    sigma_s: float
    peak_quality: float


class TdoaEvidence(BaseModel):
    """What a time-difference fix rests on."""

    pairs: list[PairEvidence]
    residual_rms_s: float
    window_start_ns: int
    window_s: float
    dropped_receivers: list[str] = Field(default_factory=list)
    # another mode is within a likelihood ratio of 5: the data cannot tell them apart, and
    # ``alternatives`` (and the GeoJSON) hold it with its ellipse
    ambiguous: bool = False


class Result(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["heimdall.result/1"] = Field(RESULT_SCHEMA, alias="schema")
    job_id: str
    status: Literal["ok", "failed"]
    model_version: str | None = None
    method: Literal["rss", "tdoa", "hybrid"] | None = None  # what produced the estimate
    position: Position | None = None
    covariance_en_m2: list[list[float]] | None = None
    ellipse: Ellipse | None = None
    geojson: dict[str, Any] | None = None
    receivers_used: list[str] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    tdoa: TdoaEvidence | None = None
    timings_ms: Timings = Field(default_factory=Timings)
    worker: str | None = None
    ab_arm: str | None = None  # §12: the A/B arm that chose model_version
    batch_id: str | None = None
    cache: Literal["hit", "miss"] | None = None  # None: the result cache was not consulted
    completed_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    error: ErrorInfo | None = None

    @classmethod
    def failed(cls, job_id: str, code: ErrorCode, message: str, **fields: Any) -> Result:
        return cls(
            job_id=job_id,
            status="failed",
            error=ErrorInfo(code=code, message=message),
            **fields,
        )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def worker_id(pid: int | None = None) -> str:
    """``host:pid`` of a worker process (this one by default): a result's ``worker``, and the
    holder of the job claims it takes."""
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"
