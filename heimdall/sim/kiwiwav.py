"""A simulated job written as the files kiwirecorder would have made: one KiwiSDR IQ WAV per
receiver (``YYYYMMDDTHHMMSSZ_<Hz>_<station>_iq.wav``: 512-sample blocks, each with its GNSS
stamp) and ``gnss_pos/<station>.txt``, so the whole path from files is exercised."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np

from heimdall.dsp.iq import decode_iq
from heimdall.schemas.job import IQJob

GPS_EPOCH_UNIX_S = 315_964_800
GPS_MINUS_UTC_S = 18
SECONDS_PER_WEEK = 604_800
BLOCK = 512


def write_kiwi_set(
    job: IQJob, directory: Path, stamp_noise_ns: float = 30.0, seed: int = 0
) -> list[Path]:
    """One WAV per GNSS-timed receiver of ``job`` (plus its position file); returns the WAVs."""
    rng = np.random.default_rng(seed)
    (directory / "gnss_pos").mkdir(parents=True, exist_ok=True)
    first_ns = min(r.time_ns for r in job.receivers)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(first_ns // 10**9))
    paths = []
    for r in job.receivers:
        iq = decode_iq(r.inline_bytes(), r.datatype, r.num_samples)
        scale = 16_000.0 / max(float(np.abs(iq).max()), 1e-12)
        ints = np.stack([iq.real, iq.imag], 1) * scale
        samples = np.clip(np.round(ints), -32768, 32767).astype("<i2")
        path = directory / f"{stamp}_{round(r.center_frequency_hz)}_{r.receiver_id}_iq.wav"
        path.write_bytes(_wav(samples, r.time_ns, r.sample_rate_hz, stamp_noise_ns, rng))
        (directory / "gnss_pos" / f"{r.receiver_id}.txt").write_text(
            f"d.{r.receiver_id.replace('-', '_')} = struct('coord', [{r.lat:.6f},{r.lon:.6f}], "
            "'host', 'simulated', 'port', 8073);\n"
        )
        paths.append(path)
    return paths


def _wav(samples: np.ndarray, time_ns: int, rate_hz: float, noise_ns: float, rng) -> bytes:
    rate = int(rate_hz + 0.5)
    out = bytearray(struct.pack("<4sI4s", b"RIFF", 0, b"WAVE"))
    out += struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, rate, rate * 4, 4, 16)
    for k in range(len(samples) // BLOCK):
        utc_ns = time_ns + round(k * BLOCK * 1e9 / rate_hz + rng.normal(0.0, noise_ns))
        gps_s, gps_ns = divmod(utc_ns + (GPS_MINUS_UTC_S - GPS_EPOCH_UNIX_S) * 10**9, 10**9)
        out += struct.pack("<4sIBBII", b"kiwi", 10, 0, 0, gps_s % SECONDS_PER_WEEK, gps_ns)
        out += struct.pack("<4sI", b"data", BLOCK * 4)
        out += samples[k * BLOCK : (k + 1) * BLOCK].tobytes()
    struct.pack_into("<I", out, 4, len(out) - 8)
    return bytes(out)
