"""A KiwiSDR IQ WAV writer for tests, written from the layout in DESIGN §10 (not from the reader).

``kiwirecorder.py -m iq --kiwi-wav`` writes: RIFF/WAVE, a 16-byte PCM fmt chunk (2 channels,
16 bits, rate int(fs + 0.5)), then per block a 10-byte ``kiwi`` chunk ``<BBII`` (seconds since
the last GNSS fix, 0, GPS seconds of week, ns) and a ``data`` chunk of 512 int16 I/Q pairs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GPS_EPOCH_UNIX_S = 315_964_800
GPS_MINUS_UTC_S = 18  # since 2017-01-01
WEEK_S = 604_800


@dataclass
class KiwiWavSpec:
    start_ns: int  # UTC time of sample 0 of block 0
    rate_hz: float = 12001.137  # true ADC-derived rate
    blocks: int = 200
    samples_per_block: int = 512
    stamp_noise_ns: float = 40.0
    stale_first: int = 0  # first blocks carry the stamp of an older block
    no_gnss: list[int] = field(default_factory=list)  # blocks with status 255
    outliers: list[int] = field(default_factory=list)  # blocks with a stamp 3 ms off
    jump_at: int | None = None  # from this block on, samples were lost: stamps jump
    jump_samples: int = 100  # how many samples were lost at the jump
    truncate_bytes: int = 0  # cut the file this many bytes before its end
    seed: int = 0


def gps_parts(utc_ns: int) -> tuple[int, int]:
    """(GPS seconds of week, ns) of a UTC time."""
    gps_ns = utc_ns - GPS_EPOCH_UNIX_S * 10**9 + GPS_MINUS_UTC_S * 10**9
    seconds, ns = divmod(gps_ns, 10**9)
    return seconds % WEEK_S, ns


def write_kiwi_wav(path: Path, spec: KiwiWavSpec) -> np.ndarray:
    """Write the file; returns the int16 I/Q samples written (shape [blocks·512, 2])."""
    rng = np.random.default_rng(spec.seed)
    n = spec.samples_per_block
    total = spec.blocks * n
    t = np.arange(total) / spec.rate_hz
    tone = 3000 * np.exp(2j * np.pi * 1000.0 * t)
    iq = np.stack([tone.real, tone.imag], axis=1) + rng.normal(0, 300, (total, 2))
    samples = np.clip(np.round(iq), -32768, 32767).astype("<i2")
    out = bytearray()
    out += struct.pack("<4sI4s", b"RIFF", 0, b"WAVE")
    rate = int(spec.rate_hz + 0.5)
    out += struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, rate, rate * 4, 4, 16)
    lost = 0
    for k in range(spec.blocks):
        if spec.jump_at is not None and k == spec.jump_at:
            lost = spec.jump_samples
        first_sample = k * n + lost  # what the ADC counted, lost samples included
        utc_ns = spec.start_ns + round(first_sample * 1e9 / spec.rate_hz)
        utc_ns += round(rng.normal(0.0, spec.stamp_noise_ns))
        if k < spec.stale_first:
            utc_ns -= (spec.stale_first - k + 3) * round(n * 1e9 / spec.rate_hz)
        if k in spec.outliers:
            utc_ns += 3_000_000
        status = 255 if k in spec.no_gnss else int(rng.integers(0, 8))
        gps_s, gps_ns = gps_parts(utc_ns)
        out += struct.pack("<4sIBBII", b"kiwi", 10, status, 0, gps_s, gps_ns)
        out += struct.pack("<4sI", b"data", n * 4)
        out += samples[k * n : (k + 1) * n].tobytes()
    struct.pack_into("<I", out, 4, len(out) - 8)
    if spec.truncate_bytes:
        out = out[: -spec.truncate_bytes]
    path.write_bytes(bytes(out))
    return samples


def kiwi_name(start_ns: int, frequency_hz: int, station: str) -> str:
    import time

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start_ns // 10**9))
    return f"{stamp}_{frequency_hz}_{station}_iq.wav"


def random_spec(rng: np.random.Generator, start_ns: int, seed: int, max_blocks: int) -> KiwiWavSpec:
    """A file with the faults real ones have, drawn at random: true rate 12000.9–12001.3 Hz,
    stamp noise 20–80 ns, 0–2 stale starts, 0–4 no-GNSS blocks, 0–2 outlier stamps, a cut end."""
    blocks = int(rng.integers(40, max_blocks))
    return KiwiWavSpec(
        start_ns + int(rng.integers(0, 10**12)),
        rate_hz=float(rng.uniform(12000.9, 12001.3)),
        blocks=blocks,
        stamp_noise_ns=float(rng.uniform(20, 80)),
        stale_first=int(rng.integers(0, 3)),
        no_gnss=sorted(rng.choice(blocks, int(rng.integers(0, 5)), replace=False).tolist()),
        outliers=sorted(rng.choice(blocks, int(rng.integers(0, 3)), replace=False).tolist()),
        truncate_bytes=int(rng.integers(0, 2048)),
        seed=seed,
    )


def expected_ns(spec: KiwiWavSpec, block: int, lost: int = 0) -> int:
    """True UTC time of the first sample of ``block`` (``lost`` samples before it)."""
    return spec.start_ns + round((block * spec.samples_per_block + lost) * 1e9 / spec.rate_hz)


def first_kept_block(spec: KiwiWavSpec) -> int:
    """The first block a correct reader keeps: past stale stamps and leading no-GNSS blocks,
    and not an outlier (whose stamp is off, so the range starts after it)."""
    block = spec.stale_first
    while block in spec.no_gnss or block in spec.outliers:
        block += 1
    return block
