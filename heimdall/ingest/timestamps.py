"""Time in integer nanoseconds: RFC 3339 text and GPS week/seconds to ns since the Unix epoch.

Never through a float or a ``datetime``: a float holds ~0.2 µs at today's epoch and a datetime
holds 1 µs, both too coarse for time differences of arrival.
"""

from __future__ import annotations

import re
from datetime import date

NS_PER_S = 10**9
SECONDS_PER_DAY = 86_400
SECONDS_PER_WEEK = 604_800
UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z

# GPS − UTC in seconds from each UTC instant on (IERS Bulletin C). No leap second has been
# announced after 2016-12-31; a new one must be added here.
GPS_MINUS_UTC_S: tuple[tuple[int, int], ...] = (
    (1_136_073_600, 14),  # 2006-01-01
    (1_230_768_000, 15),  # 2009-01-01
    (1_341_100_800, 16),  # 2012-07-01
    (1_435_708_800, 17),  # 2015-07-01
    (1_483_228_800, 18),  # 2017-01-01
)

_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)


class TimestampError(ValueError):
    """A time that cannot be read; the message says what is wrong with it."""


def rfc3339_to_ns(text: str) -> int:
    """ns since the Unix epoch of an RFC 3339 time; fractions of any length, rounded to 1 ns.

    A leap second (``:60``) reads as the first instant of the next minute, as POSIX time does.
    """
    match = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise TimestampError(f"{text!r} is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.f]Z)")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 60:
        raise TimestampError(f"{text!r}: time of day out of range")
    try:
        days = date(year, month, day).toordinal() - UNIX_EPOCH_ORDINAL
    except ValueError as exc:
        raise TimestampError(f"{text!r}: {exc}") from exc
    seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    if match.group(9):
        offset_s = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset_s if match.group(9) == "+" else -offset_s
    return seconds * NS_PER_S + _fraction_ns(match.group(7) or "")


def _fraction_ns(digits: str) -> int:
    """Decimal fraction digits → ns, rounded half up past the 9th digit."""
    if len(digits) <= 9:
        return int(digits.ljust(9, "0")) if digits else 0
    head, rest = int(digits[:9]), digits[9:]
    return head + (1 if rest[0] >= "5" else 0)


def ns_to_rfc3339(time_ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffffffffZ`` of ns since the Unix epoch (9 fraction digits)."""
    seconds, fraction = divmod(time_ns, NS_PER_S)
    days, second_of_day = divmod(seconds, SECONDS_PER_DAY)
    day = date.fromordinal(UNIX_EPOCH_ORDINAL + days)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}.{fraction:09d}Z"


def gps_minus_utc_s(unix_s: int) -> int:
    """Leap seconds between GPS time and UTC at the Unix time ``unix_s``."""
    if unix_s < GPS_MINUS_UTC_S[0][0]:
        raise TimestampError("GPS times before 2006 are not supported (no leap-second table)")
    offset = GPS_MINUS_UTC_S[0][1]
    for since_s, value in GPS_MINUS_UTC_S:
        if unix_s >= since_s:
            offset = value
    return offset


def gps_to_unix_ns(week: int, seconds_of_week: int, nanoseconds: int) -> int:
    """UTC ns since the Unix epoch of a GPS time (full week number, seconds and ns into it)."""
    gps_s = week * SECONDS_PER_WEEK + seconds_of_week
    unix_s = GPS_EPOCH_UNIX_S + gps_s
    return (unix_s - gps_minus_utc_s(unix_s - 18)) * NS_PER_S + nanoseconds


def gps_week_near(unix_s: int, seconds_of_week: int) -> int:
    """The GPS week that puts ``seconds_of_week`` closest to the Unix time ``unix_s``."""
    gps_s = unix_s - GPS_EPOCH_UNIX_S + gps_minus_utc_s(unix_s)
    week = gps_s // SECONDS_PER_WEEK
    return min(
        (week - 1, week, week + 1),
        key=lambda w: abs(w * SECONDS_PER_WEEK + seconds_of_week - gps_s),
    )
