"""Writing KiwiSDR IQ WAV files as ``kiwirecorder.py -m iq --kiwi-wav`` writes them, and the
``gnss_pos/NAME.txt`` files beside them: the one writer of the simulator, the tests and live
acquisition.

Written from the layout of DESIGN §10, not from the reader (``heimdall.ingest.kiwi``), so the
reader's tests compare two independent readings of the format: ``RIFF <u32> WAVE``, a 16-byte
PCM ``fmt `` chunk (2 channels, 16 bits, rate ``int(fs + 0.5)``), then per block a 10-byte
``kiwi`` chunk ``<BBII`` (seconds since the last GNSS fix — 255: none —, a reserved byte, GPS
seconds of the week, nanoseconds) and a ``data`` chunk of int16 I/Q pairs (512 per block).
The RIFF size is kept right after every block: a recording stopped at any point is a file
every reader takes.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z
GPS_MINUS_UTC_S = 18  # leap seconds since 2017-01-01
WEEK_S = 604_800
SAMPLES_PER_BLOCK = 512
NO_GNSS = 255  # last_gps_solution of a receiver without a fix


def gps_stamp(utc_ns: int) -> tuple[int, int]:
    """``(GPS seconds of the week, nanoseconds)`` of a UTC time (after 2017)."""
    gps_ns = utc_ns - GPS_EPOCH_UNIX_S * 10**9 + GPS_MINUS_UTC_S * 10**9
    seconds, ns = divmod(gps_ns, 10**9)
    return seconds % WEEK_S, ns


def kiwi_file_name(start_unix_s: float, frequency_hz: float, station: str) -> str:
    """kiwirecorder's name: ``YYYYMMDDTHHMMSSZ_<frequency Hz>_<station>_iq.wav``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(start_unix_s)))
    return f"{stamp}_{round(frequency_hz)}_{station}_iq.wav"


def gnss_pos_text(station: str, lat: float, lon: float, host: str, port: int) -> str:
    """kiwirecorder's ``gnss_pos/<station>.txt`` line (an Octave struct)."""
    field = station.replace("-", "_")
    coord = f"[{lat:.6f},{lon:.6f}]"
    return f"d.{field} = struct('coord', {coord}, 'host', '{host}', 'port', {port});\n"


class KiwiWavWriter:
    """One KiwiSDR IQ WAV, written block by block to ``out`` (a binary file)."""

    def __init__(self, out: BinaryIO, rate_hz: float) -> None:
        self.out = out
        rate = int(rate_hz + 0.5)
        out.write(struct.pack("<4sI4s", b"RIFF", 0, b"WAVE"))
        out.write(struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, rate, rate * 4, 4, 16))
        self._patch_size()

    def write_block(
        self, iq16: np.ndarray, gps_seconds: int, gps_ns: int, last_gps_solution: int = 0
    ) -> None:
        """A ``kiwi`` chunk with the stamp of the block's first sample, then its ``data``
        chunk; ``iq16``: int16 ``[n, 2]`` (I, Q)."""
        samples = np.ascontiguousarray(iq16, dtype="<i2")
        stamp = struct.pack("<4sIBBII", b"kiwi", 10, last_gps_solution, 0, gps_seconds, gps_ns)
        self.out.write(stamp + struct.pack("<4sI", b"data", samples.nbytes) + samples.tobytes())
        self._patch_size()

    def _patch_size(self) -> None:
        end = self.out.tell()
        self.out.seek(4)
        self.out.write(struct.pack("<I", end - 8))
        self.out.seek(end)
        self.out.flush()


def write_kiwi_wav(
    path: Path,
    iq16: np.ndarray,
    rate_hz: float,
    stamps: list[tuple[int, int, int]],
) -> None:
    """A whole file: ``iq16`` int16 ``[blocks·512, 2]``, ``stamps`` ``(last_gps_solution, GPS
    seconds of the week, ns)`` per block of ``SAMPLES_PER_BLOCK`` samples."""
    with path.open("wb") as out:
        writer = KiwiWavWriter(out, rate_hz)
        for k, (status, seconds, ns) in enumerate(stamps):
            block = iq16[k * SAMPLES_PER_BLOCK : (k + 1) * SAMPLES_PER_BLOCK]
            writer.write_block(block, seconds, ns, status)
