"""A capture: every receiver recorded over one GNSS window, written as kiwirecorder writes it.

``DIR/YYYYMMDDTHHMMSSZ_<Hz>_<NAME>_iq.wav`` per receiver (one name time for the whole set, so
``heimdall ingest kiwi`` groups them), ``DIR/gnss_pos/NAME.txt`` with the position the receiver
reports, and ``DIR/acquire.json``: each receiver's address, firmware, rate, position and what
became of it. A receiver left out (busy, refused, no GNSS, stalled, dropped, lagging, another
firmware generation) has its partial file moved to ``DIR/left-out/``, so the set in ``DIR`` is
exactly what may be localized together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from heimdall.acquire.receiver import (
    Receiver,
    Status,
    fetch_status,
    has_cic_filter,
    station_name,
    version_text,
)
from heimdall.acquire.session import ReceiverFailure, Session, Tuning, Window
from heimdall.ingest.kiwi_writer import gnss_pos_text, kiwi_file_name

MIN_RECEIVERS = 3  # the fewest receivers a TDoA fix needs
STATUS_TIMEOUT_S = 3.0
LEFT_OUT_DIR = "left-out"
MANIFEST = "acquire.json"


@dataclass
class Outcome:
    """One receiver's part of a capture."""

    receiver: Receiver
    session: Session
    failure: ReceiverFailure | None = None
    position: tuple[float, float] | None = None
    position_source: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class Capture:
    """What a capture recorded; ``refusal`` says why the set cannot be localized."""

    directory: Path
    started_unix_s: float
    outcomes: list[Outcome]
    refusal: str | None = None
    interrupted: bool = False
    files: list[Path] = field(default_factory=list)

    @property
    def recorded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]


async def capture(
    receivers: list[Receiver],
    tuning: Tuning,
    seconds: float,
    directory: Path,
    stations: dict[str, tuple[float, float]] | None = None,
    on_progress: Callable[[list[Session]], None] | None = None,
    progress_interval_s: float = 1.0,
) -> Capture:
    """Record ``seconds`` of GNSS time from every receiver at once into ``directory``.

    ``stations``: positions that win over what a receiver reports (``--station``). Cancelled
    (Ctrl-C), it closes every file (each valid as far as it got) and re-raises."""
    directory.mkdir(parents=True, exist_ok=True)
    statuses = await asyncio.gather(*(_status(r) for r in receivers))
    receivers = _named(receivers, statuses)
    started = time.time()
    frequency_hz = tuning.frequency_khz * 1e3
    sessions = [
        Session(r, tuning, directory / kiwi_file_name(started, frequency_hz, r.name), s)
        for r, s in zip(receivers, statuses, strict=True)
    ]
    window = Window(seconds, {r.name for r in receivers})
    result = Capture(directory, started, [Outcome(s.receiver, s) for s in sessions])
    deadline_s = tuning.connect_timeout_s + 1.5 * seconds + 15.0
    tasks = [asyncio.create_task(s.record(window)) for s in sessions]
    reporter = asyncio.create_task(_report(sessions, on_progress, progress_interval_s))
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    except asyncio.CancelledError:
        result.interrupted = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _finish(result, tasks, stations or {})
        raise
    finally:
        reporter.cancel()
    _finish(result, tasks, stations or {})
    return result


def _named(receivers: list[Receiver], statuses: list[Status | None]) -> list[Receiver]:
    """Receivers given without a name take their own (when short and unique in the set)."""
    own = [station_name(r, s.name if s else None) for r, s in zip(receivers, statuses, strict=True)]
    return [
        r if r.named or own.count(name) > 1 or name in {q.name for q in receivers if q.named}
        else dataclasses.replace(r, name=name)
        for r, name in zip(receivers, own, strict=True)
    ]  # fmt: skip


async def _status(receiver: Receiver) -> Status | None:
    try:
        return await asyncio.to_thread(fetch_status, receiver, STATUS_TIMEOUT_S)
    except OSError:
        return None  # not fatal: the stream itself says whether the receiver is there


async def _report(sessions, on_progress, interval_s: float) -> None:
    if on_progress is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        on_progress(sessions)


def _finish(result: Capture, tasks: list[asyncio.Task], stations: dict) -> None:
    for outcome, task in zip(result.outcomes, tasks, strict=True):
        outcome.failure = _failure_of(task, outcome.session, result.interrupted)
    _keep_one_firmware_generation(result.recorded)
    for outcome in result.outcomes:  # interrupted ones too: their files stay usable
        if outcome.ok or outcome.failure.code == "interrupted":
            _place(outcome, stations)
    _set_aside(result)
    ok = result.recorded
    if result.interrupted:
        result.refusal = "interrupted (Ctrl-C): files closed, the set not localized"
    elif len(ok) < MIN_RECEIVERS:
        result.refusal = (
            f"{len(ok)} receiver(s) recorded; a time-difference fix needs {MIN_RECEIVERS}"
        )
    result.files = [o.session.path for o in ok]
    _write_manifest(result)


def _failure_of(task: asyncio.Task, session: Session, interrupted: bool) -> ReceiverFailure | None:
    if interrupted and (not task.done() or task.cancelled()):
        reached = session.progress.recorded_s
        return ReceiverFailure("interrupted", f"stopped by Ctrl-C after {reached:.1f} s recorded")
    if not task.done() or task.cancelled():
        reached = session.progress.recorded_s
        return ReceiverFailure(
            "timeout", f"did not reach the window's end in time ({reached:.1f} s recorded)", True
        )
    exc = task.exception()
    if exc is None:
        return None
    if isinstance(exc, ReceiverFailure):
        return exc
    return ReceiverFailure("error", f"{type(exc).__name__}: {exc}", True)


def _keep_one_firmware_generation(recorded: list[Outcome]) -> None:
    """Receivers before and after the CIC compensation filter (v1.653) are never mixed in
    one job: the larger group stays (on a tie, the newer firmware)."""
    known = [o for o in recorded if o.session.version is not None]
    newer = [o for o in known if has_cic_filter(o.session.version)]
    older = [o for o in known if not has_cic_filter(o.session.version)]
    if not newer or not older:
        return
    leave = older if len(newer) >= len(older) else newer
    kept = "v1.653 or later" if leave is older else "before v1.653"
    for o in leave:
        o.failure = ReceiverFailure(
            "firmware",
            f"firmware {version_text(o.session.version)} is on the other side of the CIC "
            f"compensation filter (v1.653) from the rest ({kept}); KiwiSDR says the two cannot "
            "be mixed in a TDoA run",
        )


def _place(outcome: Outcome, stations: dict[str, tuple[float, float]]) -> None:
    session, name = outcome.session, outcome.receiver.name
    page = session.status.position if session.status else None
    for position, source in (
        (stations.get(name), "--station"),
        (session.position, "receiver (rx_gps)"),
        (page, "status page (gps=)"),
    ):
        if position is not None:
            outcome.position, outcome.position_source = position[:2], source
            break
    else:
        if outcome.ok:
            outcome.failure = ReceiverFailure(
                "position", f"reports no position; give --station {name}=LAT,LON"
            )
        return
    folder = session.path.parent / "gnss_pos"
    folder.mkdir(exist_ok=True)
    lat, lon = outcome.position
    text = gnss_pos_text(name, lat, lon, outcome.receiver.host, outcome.receiver.port)
    (folder / f"{name}.txt").write_text(text)


def _set_aside(result: Capture) -> None:
    """Files of receivers left out go to ``left-out/`` (on Ctrl-C everything stays: each file
    is valid as far as it got, and the user may still want them)."""
    aside = result.directory / LEFT_OUT_DIR
    for o in result.outcomes:
        if o.ok or not o.session.path.exists() or o.failure.code == "interrupted":
            continue
        aside.mkdir(exist_ok=True)
        o.session.path = o.session.path.replace(aside / o.session.path.name)
        stale = result.directory / "gnss_pos" / f"{o.receiver.name}.txt"
        stale.unlink(missing_ok=True)


def _write_manifest(result: Capture) -> None:
    rows = []
    for o in result.outcomes:
        s = o.session
        rows.append({
            "name": o.receiver.name, "host": o.receiver.host, "port": o.receiver.port,
            "firmware": version_text(s.version), "sample_rate_hz": s.progress.rate_hz,
            "frames": s.progress.frames, "recorded_s": round(s.progress.recorded_s, 3),
            "gnss_age_s": s.progress.gnss_age_s,
            "position": o.position, "position_source": o.position_source or None,
            "file": str(s.path.relative_to(result.directory)) if s.path.exists() else None,
            "status": "recorded" if o.ok else o.failure.code,
            "reason": None if o.ok else str(o.failure),
        })  # fmt: skip
    manifest = {
        "directory": str(result.directory),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started_unix_s)),
        "refusal": result.refusal,
        "receivers": rows,
    }
    (result.directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
