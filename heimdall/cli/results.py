"""Waiting for submitted jobs' results and showing them: a table, or JSON lines."""

from __future__ import annotations

import sys

from heimdall.harness.console import Progress, format_table


def show_results(handles: list, truths: list, timeout_s: float, as_json: bool) -> int:
    """Wait for each job's result; a table for people, or one ``heimdall.result/1`` per line."""
    from heimdall.harness.result_table import RESULT_HEADERS, result_row

    rows, progress = [], Progress(len(handles), "results")
    for i, (h, truth) in enumerate(zip(handles, truths, strict=True)):
        try:
            result = h.result(timeout_s=timeout_s)
        except TimeoutError as exc:
            print(f"{exc}; is a worker running? (heimdall status)", file=sys.stderr)
            return 1
        if as_json:
            print(result.to_json(), flush=True)
        rows.append(result_row(result, truth))
        progress.update(i + 1)
    if not as_json:
        print(format_table(RESULT_HEADERS, rows), flush=True)
    return 0
