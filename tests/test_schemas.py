"""Job and result contracts: invalid input names the field."""

import base64
import calendar
import json
import uuid

import pytest
from pydantic import ValidationError

from heimdall.schemas import IQJob, Result
from heimdall.schemas.errors import ErrorCode


def _capture(**over):
    base = {
        "receiver_id": "torino",
        "lat": 45.044,
        "lon": 7.672,
        "alt_m": 240.0,
        "sample_rate_hz": 50_000.0,
        "center_frequency_hz": 145.5e6,
        "start_time": "2026-11-27T10:00:00Z",
        "datatype": "ci16_le",
        "num_samples": 512,
        "iq_b64": base64.b64encode(b"\x00" * 2048).decode(),
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _job(**over):
    base = {
        "schema": "heimdall.iqjob/1",
        "job_id": str(uuid.uuid4()),
        "receivers": [_capture(receiver_id=f"r{i}") for i in range(3)],
    }
    base.update(over)
    return base


def _error_locations(data) -> set[str]:
    with pytest.raises(ValidationError) as info:
        IQJob.model_validate(data)
    return {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_valid_job_round_trips_through_json():
    job = IQJob.model_validate(_job(meta={"site": "x"}))
    again = IQJob.model_validate_json(job.to_json())
    assert again == job
    assert json.loads(job.to_json())["schema"] == "heimdall.iqjob/1"
    assert job.confidence == 0.95 and job.priority == "interactive" and job.model == "default"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"job_id": "not-a-uuid"}, "job_id"),
        ({"confidence": 0.3}, "confidence"),
        ({"confidence": 0.9999}, "confidence"),
        ({"priority": "urgent"}, "priority"),
        ({"schema": "heimdall.iqjob/2"}, "schema"),
        ({"receivers": []}, "receivers"),
        ({"meta": {"blob": "x" * 5000}}, "meta"),
        ({"submitted_at": "2026-11-27T10:00:00"}, "submitted_at"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_job_field_rules(over, field):
    assert field in _error_locations(_job(**over))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"lat": 91.0}, "receivers.0.lat"),
        ({"lon": -180.5}, "receivers.0.lon"),
        ({"sample_rate_hz": 0.0}, "receivers.0.sample_rate_hz"),
        ({"datatype": "cf64_le"}, "receivers.0.datatype"),
        ({"num_samples": 100}, "receivers.0.num_samples"),
        ({"num_samples": 2_000_001}, "receivers.0.num_samples"),
        ({"receiver_id": "x" * 65}, "receivers.0.receiver_id"),
        ({"lat": float("nan")}, "receivers.0.lat"),
    ],
)
def test_capture_field_rules(over, field):
    data = _job()
    data["receivers"][0] = _capture(**over)
    assert field in _error_locations(data)


def test_exactly_one_payload_source():
    data = _job()
    data["receivers"][0] = _capture(iq_ref="heimdall:iq:x:0")
    with pytest.raises(ValidationError, match="exactly one of iq_ref or iq_b64"):
        IQJob.model_validate(data)
    data["receivers"][0] = _capture(iq_b64=None)
    with pytest.raises(ValidationError, match="exactly one of iq_ref or iq_b64"):
        IQJob.model_validate(data)


def test_at_most_16_receivers_and_unique_ids():
    data = _job(receivers=[_capture(receiver_id=f"r{i}") for i in range(17)])
    assert "receivers" in _error_locations(data)
    data = _job(receivers=[_capture(receiver_id="same") for _ in range(3)])
    with pytest.raises(ValidationError, match="unique"):
        IQJob.model_validate(data)


def test_failed_result_carries_code():
    r = Result.failed("abc", ErrorCode.TOO_FEW_RECEIVERS, "2 receivers")
    data = json.loads(r.to_json())
    assert data["status"] == "failed"
    assert data["error"] == {"code": "too_few_receivers", "message": "2 receivers"}
    assert data["schema"] == "heimdall.result/1"
    assert data["position"] is None


T_NS = calendar.timegm((2026, 11, 18, 10, 0, 0)) * 10**9 + 123_456_789


def test_time_tags_are_optional_and_kept_to_the_nanosecond():
    plain = IQJob.model_validate(_job())
    assert plain.method == "auto" and plain.receivers[0].time_ns is None
    assert plain.receivers[0].clock.source == "free"
    tagged = _capture(
        start_time="2026-11-18T10:00:00.123456Z",
        time_ns=T_NS,
        clock={"source": "gnss", "uncertainty_ns": 42.5},
    )
    job = IQJob.model_validate(_job(receivers=[tagged], method="tdoa"))
    again = IQJob.model_validate_json(job.to_json())
    assert again.receivers[0].time_ns == T_NS  # an int end to end: no float rounding
    assert again.receivers[0].clock.uncertainty_ns == 42.5 and again.method == "tdoa"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"time_ns": float(T_NS)}, "receivers.0.time_ns"),  # a float has lost the ns already
        ({"time_ns": -1}, "receivers.0.time_ns"),
        ({"time_ns": T_NS + 2 * 10**9}, "receivers.0"),  # 2 s away from start_time
        ({"clock": {"source": "sundial"}}, "receivers.0.clock.source"),
        ({"clock": {"source": "gnss", "uncertainty_ns": -5}}, "receivers.0.clock.uncertainty_ns"),
    ],
)
def test_time_tag_rules(over, field):
    capture = _capture(start_time="2026-11-18T10:00:00.123456Z", time_ns=T_NS) | over
    assert field in _error_locations(_job(receivers=[capture]))


def test_unknown_method_is_refused():
    assert "method" in _error_locations(_job(method="triangulate"))
