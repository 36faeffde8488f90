"""Tables for people: numbers as they were rounded, counts in words, error text cut at a word."""

from __future__ import annotations

from heimdall.harness.console import format_table, plural
from heimdall.harness.result_table import LIVE_HEADERS, RESULT_HEADERS, live_row, result_row
from heimdall.schemas.errors import ErrorCode
from heimdall.schemas.result import Result


def test_a_rounded_value_prints_as_rounded():
    table = format_table(["km", "jobs/s", "n"], [[64.8, 384.115, 3], [1.0, 2000.0, 12]])
    rows = [line.split() for line in table.splitlines()[2:]]
    assert rows == [["64.8", "384.115", "3"], ["1.0", "2000.0", "12"]]


def test_counts_in_words():
    assert [plural(1, "job"), plural(2, "job"), plural(0, "receiver")] == [
        "1 job", "2 jobs", "0 receivers",
    ]  # fmt: skip


def test_a_long_error_is_cut_at_a_word_and_points_to_json():
    words = "the capture of receiver rx3 holds samples that are not finite numbers " * 3
    row = result_row(Result.failed("j" * 36, ErrorCode.INVALID_PAYLOAD, words))
    text = row[-1]
    assert text.startswith("invalid_payload: the capture") and text.endswith("(all of it: --json)")
    assert text.removesuffix(" … (all of it: --json)").split()[-1] in words.split()


def test_live_rows_have_no_truth_columns():
    result = Result.failed("j" * 36, ErrorCode.NO_SIGNAL, "nothing heard")
    assert "error km" not in LIVE_HEADERS and "in 95%" not in LIVE_HEADERS
    assert len(live_row(result)) == len(LIVE_HEADERS) == len(RESULT_HEADERS) - 2
