"""KiwiSDR IQ WAV: GNSS time and true rate recovered from a file written from the layout."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiwiwav import (
    KiwiWavSpec,
    expected_ns,
    first_kept_block,
    kiwi_name,
    random_spec,
    write_kiwi_wav,
)

from heimdall.ingest import IngestError, assemble
from heimdall.ingest.kiwi import read_kiwi, read_positions, read_sets

T0_NS = 1_795_000_000_123_456_789  # 2026-11-18, GPS − UTC = 18 s
STATION = {"F1ABC": (48.85, 2.35, 35.0)}
FREQ_HZ = 10_000_000


def _write(tmp_path: Path, spec: KiwiWavSpec, station: str = "F1ABC") -> Path:
    path = tmp_path / kiwi_name(spec.start_ns, FREQ_HZ, station)
    write_kiwi_wav(path, spec)
    return path


@pytest.mark.parametrize(
    ("spec", "first_block"),
    [
        (KiwiWavSpec(T0_NS), 0),
        (KiwiWavSpec(T0_NS, rate_hz=12000.871, stamp_noise_ns=80.0, seed=3), 0),
        (KiwiWavSpec(T0_NS, stale_first=2, seed=1), 2),
        (KiwiWavSpec(T0_NS, no_gnss=[0, 1, 2, 90, 91], seed=2), 3),
        (KiwiWavSpec(T0_NS, outliers=[40, 41, 120], seed=4), 0),
        (KiwiWavSpec(T0_NS, truncate_bytes=1001, seed=5), 0),
    ],
)
def test_time_and_rate_recovered_within_100_ns_and_0_1_ppm(tmp_path, spec, first_block):
    rec = read_kiwi(_write(tmp_path, spec), STATION)
    assert abs(rec.time_ns - expected_ns(spec, first_block)) <= 100
    assert abs(rec.sample_rate_hz / spec.rate_hz - 1) <= 0.1e-6
    assert rec.clock.source == "gnss"
    assert spec.stamp_noise_ns * 0.7 <= rec.clock.uncertainty_ns <= spec.stamp_noise_ns * 1.3
    assert (rec.lat, rec.lon, rec.alt_m) == STATION["F1ABC"]
    assert rec.center_frequency_hz == FREQ_HZ and rec.datatype == "ci16_le"


def test_stale_no_gnss_outlier_and_truncation_are_reported(tmp_path):
    spec = KiwiWavSpec(T0_NS, stale_first=2, no_gnss=[60], outliers=[100], truncate_bytes=999)
    rec = read_kiwi(_write(tmp_path, spec), STATION)
    text = "\n".join(rec.notes)
    assert "stale stamps in blocks 0–1" in text
    assert "1 blocks without GNSS time" in text and "block 60" in text
    assert "blocks 100 off the fitted line" in text
    assert "partial block dropped" in text
    # the partial last block is gone; the stale ones are cut; the rest is kept
    assert rec.num_samples == (spec.blocks - 1 - 2) * 512


def test_samples_are_the_written_ones_from_the_first_kept_block(tmp_path):
    spec = KiwiWavSpec(T0_NS, stale_first=2)
    written = write_kiwi_wav(tmp_path / kiwi_name(T0_NS, FREQ_HZ, "F1ABC"), spec)
    rec = read_kiwi(tmp_path / kiwi_name(T0_NS, FREQ_HZ, "F1ABC"), STATION)
    got = np.frombuffer(rec.read(100, 1000), "<i2").reshape(-1, 2)
    assert np.array_equal(got, written[2 * 512 + 100 : 2 * 512 + 1100])


@pytest.mark.parametrize(("jump_at", "kept"), [(150, "before"), (60, "after"), (95, "after")])
def test_a_jump_splits_the_file_and_the_longer_side_is_kept(tmp_path, jump_at, kept):
    spec = KiwiWavSpec(T0_NS, blocks=220, jump_at=jump_at, jump_samples=137, seed=7)
    rec = read_kiwi(_write(tmp_path, spec), STATION)
    if kept == "after":
        expected = expected_ns(spec, jump_at, lost=137)
        assert rec.num_samples == (spec.blocks - jump_at) * 512
    else:
        expected = expected_ns(spec, 0)
        assert rec.num_samples == jump_at * 512
    assert abs(rec.time_ns - expected) <= 100
    assert abs(rec.sample_rate_hz / spec.rate_hz - 1) <= 0.1e-6
    assert any("time jumps by" in n and "11415" in n.replace(".", "") for n in rec.notes)


def _refused(path: Path, match: str, positions=STATION):
    with pytest.raises(IngestError, match=match) as info:
        read_kiwi(path, positions)
    assert str(path) in str(info.value)


def test_files_that_cannot_be_used_are_refused_naming_file_and_problem(tmp_path):
    good = _write(tmp_path, KiwiWavSpec(T0_NS, blocks=20))
    content = good.read_bytes()

    bad = tmp_path / kiwi_name(T0_NS, FREQ_HZ, "NOTRIFF")
    bad.write_bytes(b"JUNK" + content[4:])
    _refused(bad, "not a RIFF/WAVE file")

    mono = tmp_path / kiwi_name(T0_NS, FREQ_HZ, "MONO")
    mono.write_bytes(content[:22] + (1).to_bytes(2, "little") + content[24:])
    _refused(mono, "1 channels.*2 channels")

    plain = tmp_path / kiwi_name(T0_NS, FREQ_HZ, "PLAIN")
    plain.write_bytes(content[:36] + b"data" + (8).to_bytes(4, "little") + bytes(8))
    _refused(plain, "without a 'kiwi' stamp.*--kiwi-wav")

    no_gnss = _write(tmp_path, KiwiWavSpec(T0_NS, blocks=20, no_gnss=list(range(20))), "NOFIX")
    _refused(no_gnss, r"no block has usable GNSS time \(last_gps_solution \[255\]\)",
             {"NOFIX": (1, 2, 0)})  # fmt: skip

    renamed = tmp_path / "recording.wav"
    renamed.write_bytes(content)
    _refused(renamed, "name is not YYYYMMDDTHHMMSSZ")

    _refused(good, "no position for station 'F1ABC'.*--station F1ABC=LAT,LON", positions={})


def test_positions_come_from_kiwirecorder_gnss_pos_files(tmp_path):
    folder = tmp_path / "gnss_pos"
    folder.mkdir()
    (folder / "F1-XYZ.txt").write_text(
        "d.F1_XYZ = struct('coord', [48.123400,-2.500000], 'host', 'kiwi.example', 'port', 8073);\n"
    )
    path = _write(tmp_path, KiwiWavSpec(T0_NS, blocks=20), "F1-XYZ")
    assert read_positions([folder])["F1_XYZ"] == (48.1234, -2.5, 0.0)
    rec = read_kiwi(path)  # found beside the WAV, by the Octave name with '-' → '_'
    assert (rec.lat, rec.lon) == (48.1234, -2.5)
    assert rec.receiver_id == "F1-XYZ"


def test_files_recorded_together_become_one_job_cut_to_their_common_window(tmp_path):
    stations = {"A": (45.0, 7.0, 0.0), "B": (45.5, 8.0, 0.0), "C": (44.8, 8.5, 0.0)}
    # B starts 0.3 s later (same second in its name), C is broken: refused, the others stay
    _write(tmp_path, KiwiWavSpec(T0_NS, blocks=100, seed=1), "A")
    spec_b = KiwiWavSpec(T0_NS + 300_000_000, rate_hz=12001.02, blocks=100, seed=2)
    _write(tmp_path, spec_b, "B")
    _write(tmp_path, KiwiWavSpec(T0_NS, blocks=30, no_gnss=list(range(30))), "C")
    later = KiwiWavSpec(T0_NS + 60 * 10**9, blocks=50, seed=4)
    _write(tmp_path, later, "A")
    found = read_sets(sorted(tmp_path.glob("*.wav")), stations)
    assert len(found) == 2
    first, second = found
    assert [r.receiver_id for r in first.recordings] == ["A", "B"]
    assert len(first.refused) == 1 and "no block has usable GNSS time" in str(first.refused[0])
    job = assemble(first).job
    a, b = job.receivers
    assert abs(a.time_ns - b.time_ns) < 1e9 / 12001  # both start within one sample period
    assert abs(b.time_ns - spec_b.start_ns) <= 100
    assert abs(a.num_samples / a.sample_rate_hz - b.num_samples / b.sample_rate_hz) < 2e-4
    assert [r.receiver_id for r in second.recordings] == ["A"]


def test_a_host_clock_far_from_gnss_time_is_reported(tmp_path):
    spec = KiwiWavSpec(T0_NS, blocks=20)
    path = tmp_path / kiwi_name(T0_NS - 3600 * 10**9, FREQ_HZ, "F1ABC")  # named an hour early
    write_kiwi_wav(path, spec)
    rec = read_kiwi(path, STATION)
    assert abs(rec.time_ns - T0_NS) <= 100
    assert any("GNSS time is +3600 s from the time in the file name" in n for n in rec.notes)


def test_the_fit_holds_over_many_random_files(tmp_path):
    """Random rates, noise, stale starts, no-GNSS stretches, outliers and cut-off ends."""
    rng = np.random.default_rng(2026)
    worst_ns, worst_ppm = 0.0, 0.0
    for k in range(40):
        spec = random_spec(rng, T0_NS, seed=k, max_blocks=400)
        path = tmp_path / f"{k}" / kiwi_name(spec.start_ns, FREQ_HZ, "F1ABC")
        path.parent.mkdir()
        write_kiwi_wav(path, spec)
        rec = read_kiwi(path, STATION)
        worst_ns = max(worst_ns, abs(rec.time_ns - expected_ns(spec, first_kept_block(spec))))
        worst_ppm = max(worst_ppm, abs(rec.sample_rate_hz / spec.rate_hz - 1) * 1e6)
    assert worst_ns <= 100 and worst_ppm <= 0.1, (worst_ns, worst_ppm)


_VALID = None


def _valid_bytes() -> bytes:
    global _VALID
    if _VALID is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "x.wav"
            write_kiwi_wav(path, KiwiWavSpec(T0_NS, blocks=12))
            _VALID = path.read_bytes()
    return _VALID


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 25_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 25_000),
)
def test_a_damaged_file_is_read_or_refused_never_a_crash(tmp_path, edits, cut):
    content = bytearray(_valid_bytes())
    for position, value in edits:
        if position < len(content):
            content[position] = value
    path = tmp_path / kiwi_name(T0_NS, FREQ_HZ, "F1ABC")
    path.write_bytes(bytes(content[: max(len(content) - cut, 0)]))
    try:
        rec = read_kiwi(path, STATION)
    except IngestError as exc:
        assert str(path) in str(exc)
        return
    assert rec.num_samples >= 512 and rec.sample_rate_hz > 0
    assert len(rec.read(0, rec.num_samples)) == rec.num_samples * 4
