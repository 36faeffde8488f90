"""A simulated job written as the files kiwirecorder would have made: one KiwiSDR IQ WAV per
receiver (``YYYYMMDDTHHMMSSZ_<Hz>_<station>_iq.wav``: 512-sample blocks, each with its GNSS
stamp) and ``gnss_pos/<station>.txt``, so the whole path from files is exercised."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heimdall.dsp.iq import decode_iq
from heimdall.ingest.kiwi_writer import (
    SAMPLES_PER_BLOCK,
    gnss_pos_text,
    gps_stamp,
    kiwi_file_name,
    write_kiwi_wav,
)
from heimdall.schemas.job import IQJob


def write_kiwi_set(
    job: IQJob, directory: Path, stamp_noise_ns: float = 30.0, seed: int = 0
) -> list[Path]:
    """One WAV per GNSS-timed receiver of ``job`` (plus its position file); returns the WAVs."""
    rng = np.random.default_rng(seed)
    (directory / "gnss_pos").mkdir(parents=True, exist_ok=True)
    first_ns = min(r.time_ns for r in job.receivers)
    paths = []
    for r in job.receivers:
        iq = decode_iq(r.inline_bytes(), r.datatype, r.num_samples)
        scale = 16_000.0 / max(float(np.abs(iq).max()), 1e-12)
        ints = np.stack([iq.real, iq.imag], 1) * scale
        samples = np.clip(np.round(ints), -32768, 32767).astype("<i2")
        blocks = len(samples) // SAMPLES_PER_BLOCK
        stamps = [
            (0, *gps_stamp(r.time_ns + round(k * SAMPLES_PER_BLOCK * 1e9 / r.sample_rate_hz
                                             + rng.normal(0.0, stamp_noise_ns))))
            for k in range(blocks)
        ]  # fmt: skip
        path = directory / kiwi_file_name(first_ns / 1e9, r.center_frequency_hz, r.receiver_id)
        write_kiwi_wav(path, samples, r.sample_rate_hz, stamps)
        position = gnss_pos_text(r.receiver_id, r.lat, r.lon, "simulated", 8073)
        (directory / "gnss_pos" / f"{r.receiver_id}.txt").write_text(position)
        paths.append(path)
    return paths
