"""Terminal output for people: a progress line for long work and plain-text tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


class Progress:
    """A one-line progress bar on stderr (periodic lines when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started_s = time.monotonic()
        self._last_print_s = 0.0
        self._tty = self.stream.isatty()

    def update(self, done: int) -> None:
        now = time.monotonic()
        final = done >= self.total
        interval_s = 0.2 if self._tty else 10.0
        if not final and now - self._last_print_s < interval_s:
            return
        self._last_print_s = now
        elapsed_s = now - self.started_s
        rate = done / elapsed_s if elapsed_s > 0 else 0.0
        eta_s = (self.total - done) / rate if rate > 0 else float("inf")
        filled = int(self.width * done / self.total)
        bar = "█" * filled + "·" * (self.width - filled)
        line = (
            f"{self.label} [{bar}] {done}/{self.total} "
            f"{rate:.1f}/s elapsed {elapsed_s:.0f}s eta {eta_s:.0f}s"
        )
        end = "\n" if final or not self._tty else ""
        self.stream.write(("\r" if self._tty else "") + line + end)
        self.stream.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned right (numbers) or left (text), with a rule under the header."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def _fmt(value: object) -> str:
    """A float with at most 3 decimals (1 from 1000 up), without trailing zeros: a value
    rounded to 0.1 reads 64.8, not 64.800."""
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
        text = text.rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(value)


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
