"""KiwiSDR IQ WAV files with the faults real ones have (stale first stamps, no-GNSS blocks,
outlier stamps, jumps, a cut end), written by ``heimdall.ingest.kiwi_writer`` (the format's one
writer, made from DESIGN §10's layout, not from the reader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heimdall.ingest.kiwi_writer import gps_stamp, kiwi_file_name
from heimdall.ingest.kiwi_writer import write_kiwi_wav as write_blocks


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


def write_kiwi_wav(path: Path, spec: KiwiWavSpec) -> np.ndarray:
    """Write the file; returns the int16 I/Q samples written (shape [blocks·512, 2])."""
    rng = np.random.default_rng(spec.seed)
    n = spec.samples_per_block
    total = spec.blocks * n
    t = np.arange(total) / spec.rate_hz
    tone = 3000 * np.exp(2j * np.pi * 1000.0 * t)
    iq = np.stack([tone.real, tone.imag], axis=1) + rng.normal(0, 300, (total, 2))
    samples = np.clip(np.round(iq), -32768, 32767).astype("<i2")
    stamps, lost = [], 0
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
        stamps.append((status, *gps_stamp(utc_ns)))
    write_blocks(path, samples, spec.rate_hz, stamps)
    if spec.truncate_bytes:
        path.write_bytes(path.read_bytes()[: -spec.truncate_bytes])
    return samples


def kiwi_name(start_ns: int, frequency_hz: int, station: str) -> str:
    return kiwi_file_name(start_ns / 1e9, frequency_hz, station)


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
