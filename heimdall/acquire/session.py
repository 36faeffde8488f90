"""One receiver's sound stream in IQ mode, recorded as kiwirecorder records it.

The conversation, as KiwiSDR's own client holds it (jks-prv/kiwiclient ``kiwi/client.py``,
``kiwirecorder.py``): open ``ws://HOST:PORT/<timestamp>/SND``; send ``SET auth t=kiwi p=PW``;
the server answers with ``MSG`` items — ``badp=N`` (0: accepted), ``too_busy=N``, ``down``,
``redirect=URL``, ``version_maj``/``version_min``, ``load_cfg`` (its configuration, with
``rx_gps``), ``audio_rate`` and ``sample_rate``. On ``audio_rate`` the client says ``SET AR OK
in=R out=44100``; on ``sample_rate`` it sends its name (``SET ident_user=``), the tuning
(``SET mod=iq low_cut= high_cut= freq=kHz``), a fixed gain (``SET agc=0 … manGain=``), no
compression, no squelch, no test generator and a first ``SET keepalive``; then ``SND`` frames
flow, each with its GNSS stamp, and the client says ``SET keepalive`` about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from websockets.asyncio.client import connect

from heimdall.acquire.frames import FrameError, decode_msg, decode_sound, split_tag
from heimdall.acquire.receiver import (
    NON_KIWI_APP_LIMIT_VERSION,
    Receiver,
    Status,
    parse_position,
    version_text,
)
from heimdall.ingest.kiwi_writer import KiwiWavWriter

WEEK_S = 604_800
KEEPALIVE_S = 1.0
NO_FIX_GIVE_UP_S = 2.0  # no fix in the first 2 s of sound: no GNSS, the channel is freed
STALE_FIX_S = 60  # last_gps_solution beyond this: the clock has run free since the last fix
START_FROM_FRAME = 3  # real streams' first one or two stamps are stale: the start is read here
START_SPREAD_S = 10.0  # a receiver starting this far from the others' median: not GNSS time


class ReceiverFailure(Exception):
    """Why a receiver was left out: ``code`` for tables and tests, the message for people.
    ``retry_later``: worth trying again in a later round (busy, stalled), else not this run."""

    def __init__(self, code: str, message: str, retry_later: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retry_later = retry_later


@dataclass(frozen=True)
class Tuning:
    """What every receiver is asked for."""

    frequency_khz: float
    user: str = "heimdall"
    password: str = ""
    gain_db: int = 50  # manGain with the AGC off: a fixed gain keeps amplitudes comparable
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 5.0  # no frame for this long: the stream stalled
    max_lag_s: float = 3.0  # the stream this far behind real time: it cannot keep up


@dataclass
class Window:
    """The GNSS window every receiver records: from the latest receiver start, ``seconds``
    long. The end is known once every receiver still in the set has started."""

    seconds: float
    waiting: set[str]
    starts: dict[str, float] = field(default_factory=dict)

    def started(self, name: str, gnss_s: float) -> None:
        self.starts[name] = gnss_s
        self.waiting.discard(name)

    def leave(self, name: str) -> None:
        self.waiting.discard(name)
        self.starts.pop(name, None)

    @property
    def end_s(self) -> float | None:
        if self.waiting or not self.starts:
            return None
        return max(self.starts.values()) + self.seconds

    def offset_s(self, name: str) -> float:
        """How far ``name`` started from the median start of all (0 until it started)."""
        if name not in self.starts:
            return 0.0
        starts = sorted(self.starts.values())
        return self.starts[name] - starts[(len(starts) - 1) // 2]


@dataclass
class Progress:
    """What a session shows while it records."""

    state: str = "connecting"
    recorded_s: float = 0.0
    gnss_age_s: int | None = None  # last_gps_solution of the latest frame
    rate_hz: float | None = None
    frames: int = 0


class Session:
    """One receiver's recording into ``path`` (a kiwirecorder IQ WAV)."""

    def __init__(self, receiver: Receiver, tuning: Tuning, path: Path, status: Status | None):
        self.receiver = receiver
        self.tuning = tuning
        self.path = path
        self.status = status  # the status page read before connecting (None: unreadable)
        self.progress = Progress()
        self.version: tuple[int, int] | None = status.version if status else None
        self.position: tuple[float, float] | None = None  # as the receiver reports it
        self.frequency_offset_khz = 0.0
        self.stamps: list[tuple[int, int, int]] = []  # per block, as recorded
        self._writer: KiwiWavWriter | None = None
        self._file = None
        self._samples = 0
        self._unfixed_s = 0.0  # sound before the first frame with a fix (not recorded)
        self._stale = 0  # recorded frames whose fix is older than STALE_FIX_S
        self._first_wall_s: float | None = None
        self._epoch_s: float | None = None  # first stamp, to unwrap the GPS week

    @property
    def uri(self) -> str:
        stamp = int(time.time() * 1000) & 0xFFFFFFFF
        return f"ws://{self.receiver.host}:{self.receiver.port}/{stamp}/SND"

    async def record(self, window: Window) -> None:
        """Connect, set up and record until the window's end; ``ReceiverFailure`` says why
        not. The file is closed (and valid) however this ends."""
        name = self.receiver.name
        try:
            async with asyncio.timeout(self.tuning.connect_timeout_s):
                ws = await self._open()
            async with ws:
                await self._converse(ws, window)
        except ReceiverFailure as exc:
            window.leave(name)
            self.progress.state = f"left out: {exc.code}"
            raise
        except asyncio.CancelledError:
            window.leave(name)
            raise
        except TimeoutError as exc:
            window.leave(name)
            raise ReceiverFailure(
                "unreachable", f"no answer in {self.tuning.connect_timeout_s:g} s", True
            ) from exc
        finally:
            self.close()
        self.progress.state = "recorded"

    async def _open(self):
        try:
            return await connect(
                self.uri, compression=None, proxy=None, ping_interval=None, max_size=2**22,
                open_timeout=None, user_agent_header=None,
            )  # fmt: skip
        except websockets.InvalidStatus as exc:
            code = exc.response.status_code
            where = exc.response.headers.get("Location", "")
            if 300 <= code < 400 and where:
                raise ReceiverFailure("redirect", f"HTTP {code} to {where} (not followed)") from exc
            raise ReceiverFailure("refused", f"HTTP {code} to the websocket request") from exc
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ReceiverFailure("unreachable", f"cannot connect: {exc}", True) from exc

    async def _converse(self, ws, window: Window) -> None:
        t = self.tuning
        await ws.send(f"SET auth t=kiwi p={t.password or ''}")
        self.progress.state = "setting up"
        last_keepalive = 0.0
        while True:
            try:
                async with asyncio.timeout(self._patience_s()):
                    message = await ws.recv()
            except TimeoutError as exc:
                raise self._silence() from exc
            except websockets.ConnectionClosed as exc:
                raise self._closed(exc) from exc
            if isinstance(message, str):
                continue  # the server speaks in binary messages; text is not part of it
            try:
                tag, body = split_tag(message)
                if tag == "MSG":
                    await self._on_msg(ws, decode_msg(body))
                elif tag == "SND":
                    if self._on_sound(body, window):
                        return
                    now = time.monotonic()
                    if now - last_keepalive >= KEEPALIVE_S:
                        await ws.send("SET keepalive")
                        last_keepalive = now
            except FrameError as exc:
                raise ReceiverFailure("protocol", f"unreadable {tag} message: {exc}") from exc

    def _patience_s(self) -> float:
        return (
            self.tuning.stall_timeout_s if self.progress.frames else self.tuning.connect_timeout_s
        )

    def _silence(self) -> ReceiverFailure:
        if self.progress.frames:
            return ReceiverFailure(
                "stalled",
                f"no frame for {self.tuning.stall_timeout_s:g} s after "
                f"{self.progress.recorded_s:.1f} s recorded",
                True,
            )
        return ReceiverFailure(
            "stalled", f"connected but no sound in {self.tuning.connect_timeout_s:g} s", True
        )

    def _closed(self, exc: websockets.ConnectionClosed) -> ReceiverFailure:
        if self.progress.frames:
            return ReceiverFailure(
                "dropped",
                f"connection closed after {self.progress.recorded_s:.1f} s recorded ({exc})",
                True,
            )
        limited = self.version is None or self.version >= NON_KIWI_APP_LIMIT_VERSION
        if limited:
            return ReceiverFailure(
                "rejected",
                f"closed the connection before streaming (firmware {version_text(self.version)}"
                "; since v1.834 an owner who limits channels for non-Kiwi apps rejects "
                "kiwirecorder-type clients early) — not retried this run",
            )
        return ReceiverFailure("dropped", f"closed the connection before streaming ({exc})", True)

    async def _on_msg(self, ws, items: dict[str, str | None]) -> None:
        _raise_refusal(items, self.status)
        if "version_maj" in items and "version_min" in items:
            with contextlib.suppress(TypeError, ValueError):
                self.version = (int(items["version_maj"]), int(items["version_min"]))
        if items.get("freq_offset"):
            self.frequency_offset_khz = float(items["freq_offset"])
        if "load_cfg" in items:
            self.position = _config_position(items["load_cfg"])
        if "audio_rate" in items:
            await ws.send(f"SET AR OK in={int(float(items['audio_rate']))} out=44100")
        if "sample_rate" in items:
            self.progress.rate_hz = float(items["sample_rate"])
            for command in self._setup_commands():
                await ws.send(command)
            self.progress.state = "waiting for sound"

    def _setup_commands(self) -> list[str]:
        t, rate = self.tuning, self.progress.rate_hz or 12000.0
        half = 5000 if rate < 15000 else 9500  # IQ passband: 12 kHz mode, 20.25 kHz wide mode
        baseband_khz = t.frequency_khz - self.frequency_offset_khz
        return [
            f"SET ident_user={t.user}",
            f"SET mod=iq low_cut={-half} high_cut={half} freq={baseband_khz:.3f}",
            f"SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain={t.gain_db}",
            "SET compression=0",
            "SET squelch=0 max=0",
            "SET genattn=0",
            "SET gen=0 mix=-1",
            "SET keepalive",
        ]

    def _on_sound(self, body: bytes, window: Window) -> bool:
        """Write one frame; True when this receiver's part of the window is recorded."""
        frame = decode_sound(body, stereo=True)
        stamp = frame.gnss
        if stamp is None:  # decode_sound(stereo=True) always has one
            raise FrameError("IQ frame without its GNSS header")
        p = self.progress
        p.frames += 1
        p.gnss_age_s = stamp.last_gps_solution
        rate = p.rate_hz or 12000.0
        n = len(frame.samples)
        if self._writer is None and not stamp.has_fix:  # not yet a fix: wait, a little
            self._unfixed_s += n / rate
            if self._unfixed_s >= NO_FIX_GIVE_UP_S:
                raise ReceiverFailure(
                    "no_gnss",
                    f"no GNSS fix (last_gps_solution {stamp.last_gps_solution}) in its first "
                    f"{self._unfixed_s:.1f} s: its time tags are not GNSS time",
                )
            return False
        if self._writer is None:
            self._start(rate)
        self._writer.write_block(
            frame.samples, stamp.gpssec, stamp.gpsnsec, stamp.last_gps_solution
        )
        self.stamps.append((stamp.last_gps_solution, stamp.gpssec, stamp.gpsnsec))
        self._stale += stamp.has_fix and stamp.last_gps_solution > STALE_FIX_S
        if len(self.stamps) == START_FROM_FRAME:  # the start, back-projected from this frame
            start_s = self._unwrap(stamp.gpssec + stamp.gpsnsec * 1e-9) - self._samples / rate
            window.started(self.receiver.name, start_s)
        self._samples += n
        p.recorded_s = self._samples / rate
        p.state = "recording"
        self._check_lag(rate)
        self._check_clock(window)
        end, start = window.end_s, window.starts.get(self.receiver.name)
        if end is None or start is None or start + self._samples / rate < end:
            return False
        self._check_stale()
        return True

    def _check_stale(self) -> None:
        if self._stale > len(self.stamps) / 2:
            raise ReceiverFailure(
                "no_gnss",
                f"its GNSS fix is stale: in {self._stale} of {len(self.stamps)} frames the last "
                f"solution is over {STALE_FIX_S} s old (its clock free-running since)",
            )

    def _start(self, rate: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._writer = KiwiWavWriter(self._file, rate)
        self._first_wall_s = time.monotonic()

    def _unwrap(self, seconds_of_week: float) -> float:
        if self._epoch_s is None:
            self._epoch_s = seconds_of_week
        offset = seconds_of_week - self._epoch_s
        return self._epoch_s + offset - WEEK_S * round(offset / WEEK_S)

    def _check_lag(self, rate: float) -> None:
        elapsed = time.monotonic() - (self._first_wall_s or time.monotonic())
        lag = elapsed - self._samples / rate
        if lag > self.tuning.max_lag_s:
            raise ReceiverFailure(
                "lagging",
                f"its stream is {lag:.1f} s behind real time after {elapsed:.0f} s (the link "
                "cannot carry it; the receiver would drop samples)",
                True,
            )

    def _check_clock(self, window: Window) -> None:
        offset = window.offset_s(self.receiver.name)
        if abs(offset) > START_SPREAD_S:
            raise ReceiverFailure(
                "clock",
                f"its GNSS time is {offset:+.1f} s from the other receivers': not one window "
                "(a receiver without a real fix, or a replay of another day)",
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _raise_refusal(items: dict[str, str | None], status: Status | None) -> None:
    """The ``MSG`` items that end a session before it starts, as kiwiclient reads them."""
    if "too_busy" in items:
        free = status.free_channels if status else None
        if free:
            raise ReceiverFailure(
                "rejected",
                f"answers too_busy while its status page shows {free} free channel(s): the "
                "owner limits channels for non-Kiwi apps (KiwiSDR v1.834 on) — not retried "
                "this run",
            )
        raise ReceiverFailure(
            "busy", f"all {items['too_busy']} channels are in use", retry_later=True
        )
    reasons = {
        "1": ("password", "password refused (or every channel that needs none is busy)"),
        "2": ("busy", "still determining its network address; try again in a moment"),
        "5": ("rejected", "no multiple connections from the same IP address"),
        "6": ("busy", "database update in progress; try again in a minute"),
    }
    badp = items.get("badp")
    if badp is not None and badp != "0":
        code, text = reasons.get(badp, ("rejected", f"refused the connection (badp={badp})"))
        raise ReceiverFailure(code, text, retry_later=code == "busy")
    if "ip_limit" in items:
        minutes = (items["ip_limit"] or "?").split(",")[0]
        raise ReceiverFailure(
            "time_limited",
            f"this address has used its {minutes} min of the receiver's 24 h per-IP limit — "
            "not retried this run",
        )
    if "inactivity_timeout" in items:
        raise ReceiverFailure(
            "time_limited",
            f"the receiver's inactivity limit ({items['inactivity_timeout']} min) ended the "
            "session",
            retry_later=True,
        )
    if "kiwi_kick" in items:
        raise ReceiverFailure("rejected", "the receiver's owner closed the connection (kick)")
    if "exclusive_use" in items:
        raise ReceiverFailure("busy", "locked for exclusive use", retry_later=True)
    if "wb_only" in items:
        raise ReceiverFailure("rejected", "serves wideband (/wb) connections only")
    if "password_timeout" in items:
        raise ReceiverFailure("password", "password authentication timed out")
    if "down" in items:
        raise ReceiverFailure("down", "the receiver says it is down", retry_later=True)
    if "redirect" in items:
        raise ReceiverFailure("redirect", f"redirects to {items['redirect']} (not followed)")
    if "camp_disconnect" in items:
        raise ReceiverFailure("rejected", "camped connection closed by the receiver")


def _config_position(text: str | None) -> tuple[float, float] | None:
    """``rx_gps`` of the receiver's configuration (JSON, as ``load_cfg`` carries it)."""
    import json
    from urllib.parse import unquote

    try:
        config = json.loads(text or "")
    except ValueError:
        return None
    return (
        parse_position(unquote(str(config.get("rx_gps", "")))) if isinstance(config, dict) else None
    )
