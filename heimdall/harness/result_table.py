"""Results for people: table rows (position, ellipse, error against truth, latency), and waiting
for submitted jobs' results to show them."""

from __future__ import annotations

import sys
import textwrap

from heimdall.harness.console import Progress, format_table
from heimdall.harness.scoring import error_m, inside_ellipse
from heimdall.schemas.result import Result

RESULT_HEADERS = [
    "job",
    "status",
    "lat",
    "lon",
    "major km",
    "minor km",
    "az°",
    "error km",
    "in 95%",
    "queue+worker ms",  # the result's own timings: waiting in the queue, then its worker
    "worker / error",
]
LATENCY_COLUMN = 9
TRUTH_COLUMNS = (7, 8)  # "error km", "in 95%": only where the truth is known
LIVE_HEADERS = [h for i, h in enumerate(RESULT_HEADERS) if i not in TRUTH_COLUMNS]
ERROR_CHARS = 70


def live_row(result: Result, latency_ms: float | None = None) -> list:
    """:func:`result_row` without the truth columns (results heard live, truth unknown)."""
    row = result_row(result, None, latency_ms)
    return [v for i, v in enumerate(row) if i not in TRUTH_COLUMNS]


def result_row(
    result: Result, truth: tuple[float, float] | None = None, latency_ms: float | None = None
) -> list:
    ok = result.status == "ok"
    err = error_m(result, *truth) if truth and ok else None
    inside = inside_ellipse(result, *truth) if truth and ok else None
    if latency_ms is None:
        t = result.timings_ms
        latency_ms = (t.queue or 0.0) + (t.total or 0.0)
    return [
        result.job_id[:8],
        result.status,
        round(result.position.lat, 4) if ok else "",
        round(result.position.lon, 4) if ok else "",
        round(result.ellipse.semi_major_m / 1000.0, 1) if ok else "",
        round(result.ellipse.semi_minor_m / 1000.0, 1) if ok else "",
        round(result.ellipse.orientation_deg) if ok else "",
        round(err / 1000.0, 1) if err is not None else "",
        {True: "yes", False: "no", None: ""}[inside],
        round(latency_ms, 1),
        (result.worker or "") if ok else _error_text(result),
    ]


def show_results(handles: list, truths: list, timeout_s: float, as_json: bool) -> int:
    """Wait for each submitted job's result; a table for people, or one ``heimdall.result/1``
    per line. Exit code 0 when every job got a position, 1 when one failed or a result did not
    come within ``timeout_s``."""
    rows, failed, progress = [], 0, Progress(len(handles), "results")
    for i, (h, truth) in enumerate(zip(handles, truths, strict=True)):
        try:
            result = h.result(timeout_s=timeout_s)
        except TimeoutError as exc:
            print(f"{exc}; is a worker running? (heimdall status)", file=sys.stderr)
            return 1
        if as_json:
            print(result.to_json(), flush=True)
        rows.append(result_row(result, truth))
        failed += result.status != "ok"
        progress.update(i + 1)
    if not as_json:
        print(format_table(RESULT_HEADERS, rows), flush=True)
    if failed:
        print(f"{failed} of {len(rows)} jobs failed", file=sys.stderr)
    return 1 if failed else 0


def _error_text(result: Result) -> str:
    """``code: message``, shortened at a word with a pointer to the whole (``--json``)."""
    text = f"{result.error.code.value}: {result.error.message}"
    return textwrap.shorten(text, ERROR_CHARS, placeholder=" … (all of it: --json)")
