"""The job contract ``heimdall.iqjob/1``: an envelope plus IQ bytes per receiver."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

JOB_SCHEMA = "heimdall.iqjob/1"
MAX_RECEIVERS = 16
MAX_SAMPLES = 2_000_000
MIN_SAMPLES = 512  # n_fft of model v1: fewer samples make not even one STFT frame
MAX_META_BYTES = 4096
MAX_META_DEPTH = 16
MAX_JOB_SAMPLES = 16 * MAX_SAMPLES  # default of Settings.max_job_samples
MAX_SAMPLE_RATE_HZ = 1e10  # above any real ADC; keeps rate arithmetic finite
MAX_FREQUENCY_HZ = 1e12

MAX_TIME_NS = 253_402_300_800 * 10**9  # 10000-01-01T00:00:00Z: past any datetime
MAX_START_DISAGREEMENT_NS = 10**9  # time_ns and start_time must agree within 1 s
NS_PER_US = 1000

Datatype = Literal["cf32_le", "ci16_le", "cu8"]
Method = Literal["auto", "rss", "tdoa", "hybrid"]
ClockSource = Literal["gnss", "ntp", "free"]
Priority = Literal["interactive", "bulk"]
BYTES_PER_SAMPLE: dict[str, int] = {"cf32_le": 8, "ci16_le": 4, "cu8": 2}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _in_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time whose UTC form falls outside years 1–9999 is refused."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from exc


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of nested lists/dicts in ``value``, counted without recursion; stops past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def datetime_to_ns(value: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime, in integers (µs resolution)."""
    delta = _in_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * NS_PER_US


def ns_to_datetime(time_ns: int) -> datetime:
    """The UTC datetime of ``time_ns`` (ns since the Unix epoch), truncated to microseconds."""
    seconds, rest_ns = divmod(time_ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest_ns // NS_PER_US)


class Clock(BaseModel):
    """How a capture's ``time_ns`` was obtained and how far it can be trusted."""

    model_config = ConfigDict(extra="forbid")

    source: ClockSource = "free"
    uncertainty_ns: float | None = Field(None, ge=0.0, le=1e15, allow_inf_nan=False)


class ReceiverCapture(BaseModel):
    """One receiver's IQ recording of the job, with where and how it was made."""

    model_config = ConfigDict(extra="forbid")

    receiver_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False)
    lon: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False)
    alt_m: float = Field(0.0, ge=-500.0, le=10_000.0, allow_inf_nan=False)
    sample_rate_hz: float = Field(gt=0.0, le=MAX_SAMPLE_RATE_HZ, allow_inf_nan=False)
    center_frequency_hz: float = Field(gt=0.0, le=MAX_FREQUENCY_HZ, allow_inf_nan=False)
    start_time: AwareDatetime
    datatype: Datatype
    num_samples: int = Field(ge=MIN_SAMPLES, le=MAX_SAMPLES)
    iq_ref: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    iq_b64: str | None = None
    # Time tags (DESIGN §3): first sample's time in ns since the Unix epoch (UTC, no leap
    # seconds) and the clock behind it. Strict int: a float would already have lost the ns.
    time_ns: StrictInt | None = Field(None, ge=0, lt=MAX_TIME_NS)
    clock: Clock = Field(default_factory=Clock)

    @field_validator("start_time")
    @classmethod
    def _start_in_range(cls, value: datetime) -> datetime:
        _in_utc(value)  # kept as sent; only checked that it has a UTC form
        return value

    @model_validator(mode="after")
    def _exactly_one_payload(self) -> ReceiverCapture:
        if (self.iq_ref is None) == (self.iq_b64 is None):
            raise ValueError("exactly one of iq_ref or iq_b64 must be given")
        return self

    @model_validator(mode="after")
    def _time_tags_agree(self) -> ReceiverCapture:
        if self.time_ns is not None:
            apart_ns = abs(self.time_ns - datetime_to_ns(self.start_time))
            if apart_ns > MAX_START_DISAGREEMENT_NS:
                raise ValueError(
                    f"time_ns is {apart_ns / 1e9:.3f} s away from start_time; they must agree "
                    "within 1 s"
                )
        return self

    @property
    def bytes_per_sample(self) -> int:
        return BYTES_PER_SAMPLE[self.datatype]

    @property
    def expected_bytes(self) -> int:
        return self.num_samples * self.bytes_per_sample

    def inline_bytes(self) -> bytes:
        """The decoded ``iq_b64`` payload (raises ``ValueError`` on bad base64)."""
        if self.iq_b64 is None:
            raise ValueError("capture has no inline payload")
        try:
            return base64.b64decode(self.iq_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"iq_b64 is not valid base64: {exc}") from exc


class AbAssignment(BaseModel):
    """Set by the producer when an A/B split chose the job's model version (DESIGN §12)."""

    model_config = ConfigDict(extra="forbid")

    arm: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    shadow: bool = False  # also score it with the other arms the worker serves


class IQJob(BaseModel):
    """A localization request: 1–16 simultaneous captures of one transmitter."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["heimdall.iqjob/1"] = Field(JOB_SCHEMA, alias="schema")
    job_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    submitted_at: AwareDatetime = Field(default_factory=_utcnow)
    model: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    priority: Priority = "interactive"
    receivers: list[ReceiverCapture] = Field(min_length=1, max_length=MAX_RECEIVERS)
    meta: dict[str, Any] = Field(default_factory=dict)
    method: Method = "auto"
    ab: AbAssignment | None = None  # §12: the arm of an A/B split
    batch_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @field_validator("job_id")
    @classmethod
    def _job_id_is_uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise ValueError("job_id must be a UUID") from exc

    @field_validator("submitted_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _in_utc(value)

    @field_validator("meta", mode="before")
    @classmethod
    def _meta_shallow(cls, value: Any) -> Any:
        # Checked before anything walks it recursively (validation, json.dumps).
        depth = nesting_depth(value, MAX_META_DEPTH)
        if depth > MAX_META_DEPTH:
            raise ValueError(f"meta is nested deeper than {MAX_META_DEPTH} levels")
        return value

    @field_validator("meta")
    @classmethod
    def _meta_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, separators=(",", ":")).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"meta must be JSON-serializable: {exc}") from exc
        if size > MAX_META_BYTES:
            raise ValueError(f"meta is {size} bytes serialized; the limit is {MAX_META_BYTES}")
        return value

    @model_validator(mode="after")
    def _unique_receivers(self) -> IQJob:
        ids = [r.receiver_id for r in self.receivers]
        if len(set(ids)) != len(ids):
            raise ValueError("receiver_id values must be unique within a job")
        return self

    @property
    def total_samples(self) -> int:
        """Samples over all receivers, as declared (checked against the cap before decoding)."""
        return sum(r.num_samples for r in self.receivers)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def job_id_of(job: IQJob | Mapping[str, Any]) -> str:
    """The job id of a possibly invalid job, for its failed result."""
    if isinstance(job, IQJob):
        return job.job_id
    value = job.get("job_id") if isinstance(job, Mapping) else None
    return value if isinstance(value, str) and value else "unknown"
