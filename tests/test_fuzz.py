"""Property-based fuzzing of job → Localizer: it never raises, and every failure is documented.

Jobs start from a valid one and have fields replaced by hostile values (wrong types, huge or
tiny numbers, odd datetimes, deep or wide ``meta``, random or truncated IQ bytes, wrong
counts), or are arbitrary JSON altogether.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heimdall.schemas import ErrorCode

DOCUMENTED = {code.value for code in ErrorCode} - {"internal", "timeout"}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-300, 1e308, -1e308, 2**63, 3e38, 50_000, 48_000, 12001.145]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=10),
)
hostile_times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00.123456789Z",
            "not a time",
            "",
        ]
    ),
    json_scalars,
)

CAPTURE_FIELDS = {
    "receiver_id": st.one_of(st.text(max_size=80), json_scalars),
    "lat": hostile_numbers,
    "lon": hostile_numbers,
    "alt_m": hostile_numbers,
    "sample_rate_hz": hostile_numbers,
    "center_frequency_hz": hostile_numbers,
    "start_time": hostile_times,
    "datatype": st.sampled_from(["cf32_le", "ci16_le", "cu8", "ci8", "", None]),
    "num_samples": hostile_numbers,
    "iq_ref": st.one_of(st.none(), st.text(max_size=20)),
    "iq_b64": st.one_of(
        st.binary(max_size=4096).map(lambda b: base64.b64encode(b).decode()),
        st.text(max_size=50),
    ),
}
JOB_FIELDS = {
    "schema": st.one_of(st.just("heimdall.iqjob/2"), json_scalars),
    "submitted_at": hostile_times,
    "model": st.one_of(st.sampled_from(["default", "v1", "v999", ""]), json_scalars),
    "confidence": hostile_numbers,
    "priority": st.one_of(st.sampled_from(["bulk", "urgent"]), json_scalars),
    "meta": json_values,
    "receivers": st.one_of(st.just([]), json_values),
}


@st.composite
def mutated_jobs(draw, base: dict) -> dict:
    job = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(JOB_FIELDS)))
            job[name] = draw(JOB_FIELDS[name])
        else:
            receivers = job.get("receivers")
            if not (isinstance(receivers, list) and receivers and isinstance(receivers[0], dict)):
                continue
            capture = receivers[draw(st.integers(0, len(receivers) - 1))]
            if not isinstance(capture, dict):
                continue
            name = draw(st.sampled_from(sorted(CAPTURE_FIELDS)))
            if draw(st.integers(0, 9)) == 0:
                capture.pop(name, None)
            else:
                capture[name] = draw(CAPTURE_FIELDS[name])
    return job


@pytest.fixture(scope="module")
def base_job(localizer):
    from heimdall.sim import ScenarioGenerator, SimConfig

    scenario = ScenarioGenerator(
        SimConfig(network="reference", missing_probability=0.0, num_samples=2_000), seed=4
    ).next()
    job = json.loads(scenario.to_job("ci16_le").to_json())
    assert localizer.localize(job).status == "ok"
    return job


def _check(localizer, job) -> None:
    result = localizer.localize(job)  # must not raise
    assert result.status in ("ok", "failed")
    if result.status == "failed":
        assert result.error.code.value in DOCUMENTED, result.error
        assert result.position is None
    else:
        assert np.isfinite([result.position.lat, result.position.lon]).all()
        assert result.ellipse.semi_major_m >= result.ellipse.semi_minor_m > 0


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_jobs_never_raise_and_fail_with_documented_codes(localizer, base_job, data):
    _check(localizer, data.draw(mutated_jobs(base_job)))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(job=json_values)
def test_arbitrary_json_is_an_invalid_job(localizer, job):
    result = localizer.localize(job)
    assert result.status == "failed" and result.error.code.value == "invalid_job"
