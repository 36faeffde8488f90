"""A local KiwiSDR: the websocket sound stream and the status page, serving a recording.

Each new ``/<timestamp>/SND`` connection gets the recording from its start, in real time, each
recorded block as one ``SND`` frame with its recorded GNSS stamp (so what a client writes equals
the source, block for block). ``live``: the recording is on the air on a loop from the moment
the server starts, and a connection joins it where it is (stamps moved on by the recording's
length each lap), as with a real receiver each capture is a different stretch of time.

The conversation follows a real receiver (KiwiSDR's
``rx_server``/``rx_sound`` as its own client reads it): after ``SET auth`` it answers
``badp``, then ``version_maj``/``version_min`` (with ``freq_offset``), ``load_cfg`` (its
configuration: ``rx_name``, ``rx_gps``), ``center_freq``/``bandwidth`` and ``audio_init``/
``audio_rate``/``sample_rate``; frames flow once the client has set the mode (IQ only) and said
``SET AR OK``. ``GET /status`` answers as a receiver's status page does.

Faults for tests and demos: busy, a password, no GNSS, a drop or a stall after N s, a stream
slower than real time, and an early close (a v1.834 owner limiting non-Kiwi apps).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection, serve

from heimdall.acquire.frames import GnssStamp, encode_msg, encode_sound
from heimdall.ingest.clockfit import ClockFitError, fit_clock
from heimdall.ingest.kiwi import GNSS_UNUSABLE, scan

log = logging.getLogger(__name__)
WEEK_S = 604_800
NO_GNSS = 255
AUDIO_RATE_HZ = 12_000  # the nominal rate a 12 kHz receiver announces (audio_rate)
SMETER_FULL_SCALE_DBM = -10.0  # S-meter of a full-scale int16 tone (an emulator's convention)
AUTH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Block:
    last_gps_solution: int
    gpssec: int
    gpsnsec: int
    samples: np.ndarray  # int16 [n, 2]


@dataclass(frozen=True)
class Source:
    """A recording to serve: its blocks as recorded, and the rate it announces."""

    blocks: list[Block]
    sample_rate_hz: float

    @classmethod
    def from_wav(cls, path: Path) -> Source:
        """A kiwirecorder IQ WAV (``IngestError`` when it is not one)."""
        wav = scan(path)
        blocks = [
            Block(b.gnss_status, b.gps_seconds, b.gps_nanoseconds,
                  np.frombuffer(wav.content, "<i2", 2 * b.samples, b.data_offset).reshape(-1, 2))
            for b in wav.blocks
        ]  # fmt: skip
        return cls(blocks, _true_rate(blocks, float(wav.declared_rate_hz)))

    @property
    def duration_s(self) -> float:
        return sum(len(b.samples) for b in self.blocks) / self.sample_rate_hz


def _true_rate(blocks: list[Block], declared_hz: float) -> float:
    """The rate the stamps show (what a real receiver announces as ``sample_rate``)."""
    index = np.cumsum([0] + [len(b.samples) for b in blocks[:-1]]).astype(np.int64)
    first = blocks[0].gpssec
    ns = np.array(
        [((b.gpssec - first + WEEK_S // 2) % WEEK_S - WEEK_S // 2) * 10**9 + b.gpsnsec
         for b in blocks], np.int64,
    )  # fmt: skip
    usable = np.array([b.last_gps_solution < GNSS_UNUSABLE for b in blocks])
    try:
        return fit_clock(index, ns, usable, declared_hz).sample_rate_hz
    except ClockFitError:
        return declared_hz


@dataclass(frozen=True)
class Faults:
    """How this receiver misbehaves (all off: a good receiver)."""

    busy: bool = False
    password: str | None = None
    no_gnss: bool = False
    gnss_age_s: int | None = None  # every frame's last fix this old (a stale fix)
    drop_after_s: float | None = None
    time_limit_s: float | None = None  # MSG inactivity_timeout, then close, after this long
    stall_after_s: float | None = None
    speed: float = 1.0  # < 1: the stream falls behind real time
    reject_apps: bool = False  # close before streaming, as a v1.834 owner limiting apps


@dataclass(frozen=True)
class Identity:
    name: str
    lat: float
    lon: float
    firmware: tuple[int, int] = (1, 834)
    users_max: int = 4


class Emulator:
    """Serves one :class:`Source` as a KiwiSDR would."""

    def __init__(
        self,
        source: Source,
        identity: Identity,
        faults: Faults = Faults(),
        loop: bool = False,
        live: bool = False,
    ) -> None:
        self.source = source
        self.identity = identity
        self.faults = faults
        self.loop = loop or live
        self.live = live  # a connection joins the broadcast where it is now, not at its start
        self.users = 0
        self.connections = 0  # sound connections accepted so far
        self._on_air_s: float | None = None  # event-loop time the broadcast started (live)
        starts = np.cumsum([0] + [len(b.samples) for b in source.blocks])
        self._block_starts, self._length = starts[:-1], int(starts[-1])

    async def serve(self, host: str = "127.0.0.1", port: int = 8073):
        """The listening server (``async with`` it, or ``close()`` it)."""
        self._on_air_s = asyncio.get_running_loop().time()
        return await serve(
            self._handle, host, port, process_request=self._http, compression=None,
            ping_interval=None, max_size=2**20, server_header=None,
        )  # fmt: skip

    def status_page(self) -> str:
        i, f = self.identity, self.faults
        fields = {
            "status": "active", "offline": "no", "name": i.name,
            "sdr_hw": "KiwiSDR emulator (heimdall)", "op_email": "",
            "bands": "0-30000000", "freq_offset": "0.000",
            "users": str(i.users_max if f.busy else self.users), "users_max": str(i.users_max),
            "gps": f"({i.lat:.6f}, {i.lon:.6f})", "gps_good": "0" if f.no_gnss else "8",
            "fixes": "0" if f.no_gnss else "1000", "fixes_min": "0" if f.no_gnss else "20",
            "antenna": "replayed recording", "snr": "0,0",
            "sw_version": f"KiwiSDR_v{i.firmware[0]}.{i.firmware[1]}",
        }  # fmt: skip
        return "".join(f"{k}={v}\n" for k, v in fields.items())

    def _http(self, connection: ServerConnection, request):
        path = request.path.split("?")[0]
        if path == "/status":
            return connection.respond(HTTPStatus.OK, self.status_page())
        if not path.endswith("/SND"):
            return connection.respond(
                HTTPStatus.NOT_FOUND, "this emulator serves /status and SND\n"
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            await self._converse(ws)

    async def _converse(self, ws: ServerConnection) -> None:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            password = await _auth(ws)
        f = self.faults
        if f.reject_apps:
            await ws.close(1000, "channels for non-Kiwi apps are limited")
            return
        if f.busy or self.users >= self.identity.users_max:
            await ws.send(encode_msg(too_busy=self.identity.users_max))
            await ws.close()
            return
        if f.password is not None and password != f.password:
            await ws.send(encode_msg(badp=1))
            await ws.close()
            return
        self.users += 1
        self.connections += 1
        try:
            for message in self._greeting():
                await ws.send(message)
            commands = Commands()
            reader = asyncio.create_task(commands.follow(ws))
            try:
                await commands.ready.wait()
                if commands.mode != "iq":
                    log.warning(
                        "%s: mode %s asked; this emulator streams IQ only",
                        self.identity.name,
                        commands.mode,
                    )
                    await ws.close(1003, "this emulator streams IQ only (mod=iq)")
                    return
                await self._stream(ws)
            finally:
                reader.cancel()
        finally:
            self.users -= 1

    def _greeting(self) -> list[bytes]:
        i, rate = self.identity, self.source.sample_rate_hz
        config = {
            "rx_name": i.name,
            "rx_gps": f"({i.lat:.6f}, {i.lon:.6f})",
            "rx_antenna": "replay",
        }
        return [
            encode_msg(badp=0),
            encode_msg(version_maj=i.firmware[0], version_min=i.firmware[1], freq_offset="0.000"),
            encode_msg(load_cfg=json.dumps(config)),
            encode_msg(center_freq=15_000_000, bandwidth=30_000_000, adc_clk_nom=66_666_600),
            encode_msg(audio_init=0, audio_rate=AUDIO_RATE_HZ, sample_rate=f"{rate:.6f}"),
        ]

    async def _stream(self, ws: ServerConnection) -> None:
        f, source = self.faults, self.source
        clock = asyncio.get_running_loop().time
        started, sent, seq = clock(), 0, 0
        lap, first = self._joining_point(started)
        while True:
            for block in source.blocks[first:]:
                elapsed = clock() - started
                if f.drop_after_s is not None and elapsed >= f.drop_after_s:
                    ws.transport.abort()  # a dropped link: no close frame
                    return
                if f.time_limit_s is not None and elapsed >= f.time_limit_s:
                    await ws.send(encode_msg(inactivity_timeout=max(1, round(f.time_limit_s / 60))))
                    await ws.close(1000, "inactivity time limit")
                    return
                if f.stall_after_s is not None and elapsed >= f.stall_after_s:
                    await ws.wait_closed()  # connected, silent
                    return
                await ws.send(self._frame(seq, block, lap))
                seq += 1
                sent += len(block.samples)
                delay = started + sent / (source.sample_rate_hz * f.speed) - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            if not self.loop:
                await ws.close(1000, "end of the recording")
                return
            lap, first = lap + 1, 0

    def _joining_point(self, now_s: float) -> tuple[int, int]:
        """``(lap, block)`` where a new connection starts: the recording's start, or (live)
        the block on air now."""
        if not self.live or self._on_air_s is None:
            return 0, 0
        position = int((now_s - self._on_air_s) * self.source.sample_rate_hz)
        lap, within = divmod(position, self._length)
        return lap, int(np.searchsorted(self._block_starts, within, side="right") - 1)

    def _frame(self, seq: int, block: Block, lap: int) -> bytes:
        """A block as a frame; on a later lap of ``--loop`` the stamps move on by the
        recording's length, so time never runs backwards."""
        shift_ns = round(lap * self.source.duration_s * 1e9)
        total_ns = block.gpssec * 10**9 + block.gpsnsec + shift_ns
        seconds, ns = divmod(total_ns, 10**9)
        f = self.faults
        solution = NO_GNSS if f.no_gnss else block.last_gps_solution
        if f.gnss_age_s is not None and not f.no_gnss:
            solution = min(f.gnss_age_s, NO_GNSS - 2)
        power = (
            float(np.mean(block.samples.astype(np.float64) ** 2)) * 2 if len(block.samples) else 0
        )
        smeter = SMETER_FULL_SCALE_DBM + 10 * math.log10(max(power, 1.0) / 32768.0**2)
        return encode_sound(seq, block.samples, GnssStamp(solution, seconds % WEEK_S, ns), smeter)


class Commands:
    """What the client has asked for; ``ready`` once it set a mode and said ``AR OK``."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.frequency_khz: float | None = None
        self.ar_ok = False
        self.ready = asyncio.Event()

    async def follow(self, ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, str):
                self.apply(message)

    def apply(self, command: str) -> None:
        items = dict(part.partition("=")[::2] for part in command.split()[1:])
        if "mod" in items:
            self.mode = items["mod"].lower()
            try:
                self.frequency_khz = float(items.get("freq", "nan"))
            except ValueError:
                self.frequency_khz = None
        if command.startswith("SET AR OK"):
            self.ar_ok = True
        if self.mode and self.ar_ok:
            self.ready.set()


async def _auth(ws: ServerConnection) -> str:
    """Wait for ``SET auth``; the password it gives (``#``: none, as KiwiSDR reads it)."""
    async for message in ws:
        if isinstance(message, str) and message.startswith("SET auth"):
            items = dict(p.partition("=")[::2] for p in message.split()[2:])
            password = items.get("p", "")
            return "" if password == "#" else password
    raise websockets.ConnectionClosedOK(None, None)
