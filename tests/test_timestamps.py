"""Time as integer ns: RFC 3339 fractions exact, GPS week/seconds → UTC with leap seconds."""

import calendar
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heimdall.ingest.timestamps import (
    TimestampError,
    gps_to_unix_ns,
    gps_week_near,
    ns_to_rfc3339,
    rfc3339_to_ns,
)

BASE_S = calendar.timegm((2026, 11, 27, 12, 34, 56))


@pytest.mark.parametrize(
    ("text", "expected_ns"),
    [
        ("2026-11-27T12:34:56Z", BASE_S * 10**9),
        ("2026-11-27T12:34:56.1Z", BASE_S * 10**9 + 100_000_000),
        ("2026-11-27T12:34:56.123456789Z", BASE_S * 10**9 + 123_456_789),
        # beyond ns: rounded, never through a float (a float would be off by ~100 ns here)
        ("2026-11-27T12:34:56.123456789499Z", BASE_S * 10**9 + 123_456_789),
        ("2026-11-27T12:34:56.9999999996Z", (BASE_S + 1) * 10**9),
        ("2026-11-27T13:34:56.000000001+01:00", BASE_S * 10**9 + 1),
        ("2026-11-27t12:34:56.5z", BASE_S * 10**9 + 500_000_000),
    ],
)
def test_rfc3339_fractions_become_exact_nanoseconds(text, expected_ns):
    assert rfc3339_to_ns(text) == expected_ns


@pytest.mark.parametrize(
    "text", ["2026-11-27", "2026-13-01T00:00:00Z", "2026-11-27T25:00:00Z", "yesterday", 17]
)
def test_bad_times_are_refused_with_the_text(text):
    with pytest.raises(TimestampError, match=r"RFC 3339|out of range|month"):
        rfc3339_to_ns(text)


def test_ns_round_trip_through_text():
    for value in (0, 1, 1_795_000_000_123_456_789, BASE_S * 10**9 + 999_999_999):
        assert rfc3339_to_ns(ns_to_rfc3339(value)) == value


def test_gps_time_to_utc_with_18_leap_seconds():
    # 2017-01-01T00:00:00Z is GPS second 1 167 264 018 (IERS: GPS − UTC = 18 s from then on)
    gps_s = 1_167_264_018
    unix_ns = gps_to_unix_ns(gps_s // 604_800, gps_s % 604_800, 250)
    assert unix_ns == calendar.timegm((2017, 1, 1, 0, 0, 0)) * 10**9 + 250


def test_gps_week_is_the_one_nearest_the_file_name_across_a_rollover():
    # a stamp 5 s into a new GPS week, from a file named 10 s before the week turned
    week_start_unix = 315_964_800 + 2400 * 604_800 - 18
    assert gps_week_near(week_start_unix - 10, 5) == 2400
    assert gps_week_near(week_start_unix - 10, 604_795) == 2399


@given(st.text(max_size=60))
def test_any_text_is_a_time_or_a_timestamp_error(text):
    with contextlib.suppress(TimestampError):
        assert isinstance(rfc3339_to_ns(text), int)


@given(st.integers(0, 253_402_300_799 * 10**9))
def test_every_ns_survives_text(value):
    assert rfc3339_to_ns(ns_to_rfc3339(value)) == value
