"""KiwiSDR IQ WAV (``kiwirecorder.py -m iq --kiwi-wav``) → :class:`Recording` with GNSS time.

Layout (DESIGN §10): ``RIFF <u32> WAVE``, a 16-byte ``fmt `` chunk (PCM, 2 channels, 16 bits,
rate ``int(fs + 0.5)``), then no global ``data`` chunk but blocks of a 10-byte ``kiwi`` chunk
(``<BBII``: seconds since the last GNSS fix — 255 no GNSS, ≥ 254 unusable —, reserved,
GPS seconds of the week, ns) followed by a ``data`` chunk of int16 I/Q pairs (512 samples as
recorded). The stamp is the time of the block's first sample. The GPS week is not in the file:
it comes from the name ``YYYYMMDDTHHMMSSZ_<frequency Hz>_<station>_iq.wav``. The RIFF size is
not trusted (kiwirecorder rewrites it only as it goes); the file is read to its end.
"""

from __future__ import annotations

import calendar
import re
import struct
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from heimdall.ingest.clockfit import ClockFit, ClockFitError, fit_clock
from heimdall.ingest.recording import IngestError, Recording, RecordingSet, gather
from heimdall.ingest.timestamps import (
    SECONDS_PER_WEEK,
    TimestampError,
    gps_to_unix_ns,
    gps_week_near,
)
from heimdall.schemas.job import MIN_SAMPLES, Clock

NAME = re.compile(
    r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)_(?P<frequency>[0-9]+)(?:_(?P<station>.+?))?_iq\.wav$",
    re.IGNORECASE,
)
POSITION = re.compile(
    r"d\.(?P<name>[A-Za-z0-9_]+)\s*=\s*struct\(\s*'coord'\s*,\s*\[\s*(?P<lat>[-+0-9.eE]+)\s*,"
    r"\s*(?P<lon>[-+0-9.eE]+)\s*\]"
)
GNSS_UNUSABLE = 254  # last_gps_solution ≥ this: no usable GNSS time in the block
BYTES_PER_SAMPLE = 4  # int16 I + int16 Q
KIWI_CHUNK = struct.Struct("<BBII")
CHUNK_HEADER = struct.Struct("<4sI")
NAME_CLOCK_TOLERANCE_S = 60  # host clock vs GNSS: beyond this, say so
GROUP_TOLERANCE_S = 2  # connections of one kiwirecorder run start within a second or two


@dataclass(frozen=True)
class KiwiName:
    """What a kiwirecorder file name says: start (UTC, s), tuning (Hz) and station."""

    start_unix_s: int
    frequency_hz: float
    station: str | None


@dataclass(frozen=True)
class Block:
    """One ``kiwi`` + ``data`` pair: where it is in the file and its GNSS stamp."""

    offset: int  # byte offset of the kiwi chunk
    data_offset: int  # byte offset of the samples
    samples: int
    gnss_status: int  # last_gps_solution
    gps_seconds: int
    gps_nanoseconds: int


@dataclass
class KiwiWav:
    """A scanned file: declared rate, blocks, and what the scan had to skip."""

    path: Path
    declared_rate_hz: int
    blocks: list[Block]
    content: bytes
    notes: list[str]


def parse_name(path: Path) -> KiwiName:
    """Start, tuning and station from a kiwirecorder file name."""
    match = NAME.match(path.name)
    if match is None:
        raise IngestError(
            str(path),
            "name is not YYYYMMDDTHHMMSSZ_<frequency Hz>[_<station>]_iq.wav, as kiwirecorder "
            "names IQ files; the GPS week of the GNSS stamps comes from that date",
        )
    try:
        start = calendar.timegm(time.strptime(match["stamp"].upper(), "%Y%m%dT%H%M%SZ"))
    except ValueError as exc:
        raise IngestError(str(path), f"bad date in the name: {exc}") from exc
    return KiwiName(start, float(match["frequency"]), match["station"])


def scan(path: Path) -> KiwiWav:
    """Read the chunk structure; refuse what is not a KiwiSDR IQ WAV, naming where."""
    content = path.read_bytes()
    where = str(path)
    if len(content) < 12 or content[:4] != b"RIFF" or content[8:12] != b"WAVE":
        raise IngestError(where, "not a RIFF/WAVE file", "byte 0")
    rate_hz, position = _fmt(content, where)
    blocks, notes = [], []
    pending: tuple[int, tuple[int, int, int, int]] | None = None
    while position + CHUNK_HEADER.size <= len(content):
        name, size = CHUNK_HEADER.unpack_from(content, position)
        body = position + CHUNK_HEADER.size
        if body + size > len(content):
            notes.append(
                f"file ends {len(content) - body} bytes into a {size}-byte '{_text(name)}' "
                f"chunk (byte {position}): partial block dropped"
            )
            break
        if name == b"kiwi":
            if size < KIWI_CHUNK.size:
                raise IngestError(where, f"'kiwi' chunk of {size} bytes", f"byte {position}")
            pending = (position, KIWI_CHUNK.unpack_from(content, body))
        elif name == b"data":
            if pending is None:
                raise IngestError(
                    where,
                    "a 'data' chunk without a 'kiwi' stamp before it: a plain WAV, not one "
                    "recorded with --kiwi-wav (no GNSS time)",
                    f"byte {position}",
                )
            if size % BYTES_PER_SAMPLE:
                notes.append(f"block at byte {pending[0]}: {size} data bytes, not whole samples")
            kiwi_at, (status, _, gps_s, gps_ns) = pending
            blocks.append(Block(kiwi_at, body, size // BYTES_PER_SAMPLE, status, gps_s, gps_ns))
            pending = None
        else:
            notes.append(f"skipped a '{_text(name)}' chunk at byte {position}")
        position = body + size + (size & 1)  # RIFF chunks are word-aligned
    if not blocks:
        raise IngestError(where, "no 'kiwi' + 'data' blocks: nothing recorded")
    return KiwiWav(path, rate_hz, blocks, content, notes)


def _fmt(content: bytes, where: str) -> tuple[int, int]:
    """Check the ``fmt `` chunk; returns (declared rate, offset of the next chunk)."""
    if len(content) < 20:
        raise IngestError(where, "file ends before its 'fmt ' chunk", "byte 12")
    name, size = CHUNK_HEADER.unpack_from(content, 12)
    if name != b"fmt " or size < 16 or len(content) < 20 + size:
        raise IngestError(where, f"expected a 'fmt ' chunk, found '{_text(name)}'", "byte 12")
    tag, channels, rate_hz, _, align, bits = struct.unpack_from("<HHIIHH", content, 20)
    if (tag, channels, bits, align) != (1, 2, 16, 4):
        raise IngestError(
            where,
            f"fmt says format {tag}, {channels} channels, {bits} bits; a KiwiSDR IQ WAV is "
            "PCM (1), 2 channels (I, Q), 16 bits",
            "byte 20",
        )
    if rate_hz <= 0:
        raise IngestError(where, "fmt declares a sample rate of 0", "byte 24")
    return rate_hz, 20 + size + (size & 1)


def _text(name: bytes) -> str:
    return name.decode("latin-1").replace("\x00", "\\0")


def read_kiwi(
    path: str | Path, positions: dict[str, tuple[float, float, float]] | None = None
) -> Recording:
    """A KiwiSDR IQ WAV as a GNSS-timed :class:`Recording` (raises :class:`IngestError`)."""
    path = Path(path)
    name = parse_name(path)
    wav = scan(path)
    station = name.station or path.stem
    position = find_position(station, positions or {}, path)
    fit = _fit(wav, name)
    kept = wav.blocks[fit.first_block : fit.last_block + 1]
    starts = np.cumsum([0] + [b.samples for b in kept])
    if starts[-1] < MIN_SAMPLES:
        raise IngestError(str(path), f"only {starts[-1]} well-timed samples; need {MIN_SAMPLES}")
    notes = wav.notes + _fit_notes(wav, fit) + _name_time_note(name, fit, wav)
    return Recording(
        source=str(path),
        receiver_id=station[:64],
        lat=position[0],
        lon=position[1],
        alt_m=position[2],
        sample_rate_hz=fit.sample_rate_hz,
        center_frequency_hz=name.frequency_hz,
        time_ns=fit.time_ns,
        clock=Clock(source="gnss", uncertainty_ns=round(fit.residual_rms_ns, 1)),
        datatype="ci16_le",
        num_samples=int(starts[-1]),
        read=lambda start, count: _read(wav.content, kept, starts, start, count),
        notes=notes,
    )


def _fit(wav: KiwiWav, name: KiwiName) -> ClockFit:
    blocks = wav.blocks
    sample_index = np.cumsum([0] + [b.samples for b in blocks[:-1]]).astype(np.int64)
    usable = np.array(
        [
            b.gnss_status < GNSS_UNUSABLE
            and b.gps_seconds < SECONDS_PER_WEEK
            and b.gps_nanoseconds < 10**9
            for b in blocks
        ]
    )
    if not usable.any():
        statuses = sorted({b.gnss_status for b in blocks})
        raise IngestError(
            str(wav.path), f"no block has usable GNSS time (last_gps_solution {statuses})"
        )
    stamps = np.zeros(len(blocks), np.int64)
    try:
        for i in np.flatnonzero(usable):
            b = blocks[i]
            expected_s = name.start_unix_s + int(sample_index[i] // wav.declared_rate_hz)
            week = gps_week_near(expected_s, b.gps_seconds)
            stamps[i] = gps_to_unix_ns(week, b.gps_seconds, b.gps_nanoseconds)
        return fit_clock(sample_index, stamps, usable, float(wav.declared_rate_hz))
    except (ClockFitError, TimestampError) as exc:
        raise IngestError(str(wav.path), f"GNSS time unusable: {exc}") from exc


def _fit_notes(wav: KiwiWav, fit: ClockFit) -> list[str]:
    blocks, notes = wav.blocks, []
    no_gnss = [i for i, b in enumerate(blocks) if b.gnss_status >= GNSS_UNUSABLE]
    if no_gnss:
        notes.append(
            f"{len(no_gnss)} blocks without GNSS time (last_gps_solution ≥ {GNSS_UNUSABLE}), "
            f"first at block {no_gnss[0]} (byte {blocks[no_gnss[0]].offset})"
        )
    if fit.stale_leading:
        notes.append(
            f"stale stamps in blocks {_ranges(fit.stale_leading)} before the kept range: dropped"
        )
    if fit.outliers:
        notes.append(
            f"stamps of blocks {_ranges(fit.outliers)} off the fitted line: not used "
            "(their samples kept)"
        )
    for jump in fit.jumps:
        span = range(fit.last_block + 1, len(blocks)) if jump.after else range(fit.first_block)
        seconds = sum(blocks[i].samples for i in span) / fit.sample_rate_hz
        notes.append(
            f"time jumps by {jump.step_ns / 1000:+.1f} µs at block {jump.block} (byte "
            f"{blocks[jump.block].offset}): blocks {span.start}–{span.stop - 1} ({seconds:.1f} s) "
            "beyond it dropped"
        )
    if fit.first_block > 0 or fit.last_block < len(blocks) - 1:
        notes.append(
            f"kept blocks {fit.first_block}–{fit.last_block} of {len(blocks)} "
            f"(bytes {blocks[fit.first_block].offset}–{blocks[fit.last_block].data_offset})"
        )
    return notes


def _name_time_note(name: KiwiName, fit: ClockFit, wav: KiwiWav) -> list[str]:
    """A warning when GNSS time and the recording host's clock (the name) disagree."""
    skipped = sum(b.samples for b in wav.blocks[: fit.first_block])
    named_ns = name.start_unix_s * 10**9 + round(skipped * 1e9 / fit.sample_rate_hz)
    apart_s = (fit.time_ns - named_ns) / 1e9
    if abs(apart_s) <= NAME_CLOCK_TOLERANCE_S:
        return []
    return [
        f"GNSS time is {apart_s:+.0f} s from the time in the file name (the recording host's "
        "clock?); GNSS time is used"
    ]


def _ranges(indices: tuple[int, ...], limit: int = 6) -> str:
    """``3–5, 9, 12–14`` from sorted indices (at most ``limit`` runs, then ``…``)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = [f"{a}" if a == b else f"{a}–{b}" for a, b in runs[:limit]]
    return ", ".join(text) + (", …" if len(runs) > limit else "")


def _read(content: bytes, blocks: list[Block], starts: np.ndarray, start: int, count: int) -> bytes:
    """``count`` samples from sample ``start`` of the kept blocks, as ci16_le bytes."""
    out = bytearray()
    first = int(np.searchsorted(starts, start, side="right") - 1)
    for i in range(first, len(blocks)):
        if starts[i] >= start + count:
            break
        lo = max(start - int(starts[i]), 0)
        hi = min(start + count - int(starts[i]), blocks[i].samples)
        offset = blocks[i].data_offset
        out += content[offset + lo * BYTES_PER_SAMPLE : offset + hi * BYTES_PER_SAMPLE]
    return bytes(out)


def read_positions(sources: list[Path]) -> dict[str, tuple[float, float, float]]:
    """Station → (lat, lon, 0) from kiwirecorder's ``gnss_pos`` files (files or directories)."""
    positions: dict[str, tuple[float, float, float]] = {}
    for source in sources:
        files = sorted(source.glob("*.txt")) if source.is_dir() else [source]
        for file in files:
            try:
                text = file.read_text(errors="replace")
            except OSError as exc:
                raise IngestError(str(file), f"cannot read positions: {exc}") from exc
            for match in POSITION.finditer(text):
                lat, lon = float(match["lat"]), float(match["lon"])
                if -90 <= lat <= 90 and -180 <= lon <= 180:
                    positions[match["name"]] = (lat, lon, 0.0)
                    positions.setdefault(file.stem, (lat, lon, 0.0))
    return positions


def parse_station(text: str) -> tuple[str, tuple[float, float, float]]:
    """``NAME=LAT,LON[,ALT]`` → (name, (lat, lon, alt_m)); ``ValueError`` naming the problem."""
    name, _, coords = text.partition("=")
    parts = coords.split(",")
    if not name or len(parts) not in (2, 3):
        raise ValueError(f"--station {text!r}: expected NAME=LAT,LON[,ALT]")
    try:
        lat, lon, *alt = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"--station {text!r}: {exc}") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"--station {text!r}: latitude or longitude out of range")
    return name, (lat, lon, alt[0] if alt else 0.0)


def find_position(
    station: str, positions: dict[str, tuple[float, float, float]], path: Path
) -> tuple[float, float, float]:
    """The station's position from ``positions``, or from gnss_pos files beside the WAV."""
    keys = (station, station.replace("-", "_"))
    for key in keys:
        if key in positions:
            return positions[key]
    beside = read_positions(_default_position_sources(path))  # only when not given
    for key in keys:
        if key in beside:
            return beside[key]
    raise IngestError(
        str(path),
        f"no position for station {station!r}: give --station {station}=LAT,LON or "
        f"--positions with its gnss_pos/{station}.txt",
    )


def _default_position_sources(path: Path) -> list[Path]:
    """kiwirecorder writes ``NAME.txt`` into ``--dir`` (beside the WAV) or ``gnss_pos/``."""
    folder = path.parent
    return [p for p in (folder / "gnss_pos", folder) if p.is_dir()]


def group_by_start(paths: list[Path]) -> list[list[Path]]:
    """Files of one folder whose names give (nearly) the same start: recorded together, one
    job per group."""
    named = sorted(((p.parent, parse_name(p).start_unix_s, p) for p in paths), key=lambda x: x[:2])
    groups: list[list[Path]] = []
    current = None
    for folder, start, path in named:
        if current is None or folder != current[0] or start - current[1] > GROUP_TOLERANCE_S:
            groups.append([])
            current = (folder, start)
        groups[-1].append(path)
    return groups


def read_sets(
    paths: list[Path], positions: dict[str, tuple[float, float, float]] | None = None
) -> list[RecordingSet | IngestError]:
    """One :class:`RecordingSet` per group of files recorded together (``group_by_start``),
    or the :class:`IngestError` that refused a file or a whole group.

    A file that cannot be used is refused with its reason; the others of its group stay.
    """
    named, out = [], []
    for path in paths:
        try:
            parse_name(path)
            named.append(path)
        except IngestError as exc:
            out.append(exc)
    for group in group_by_start(named):
        label = group[0].name.split("_")[0] + f" ({len(group)} files)"
        readers = [partial(read_kiwi, p, positions) for p in group]
        try:
            out.append(gather(label, readers, [str(p) for p in group]))
        except IngestError as exc:
            out.append(exc)
    return out
