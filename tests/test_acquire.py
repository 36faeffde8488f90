"""Live acquisition against local KiwiSDR emulators over real websockets: what a capture records
equals what the receivers sent (block for block, samples and GNSS stamps), every failure a real
receiver can show is named and left out, and a set below three receivers is refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import numpy as np
import pytest

from heimdall.acquire.capture import LEFT_OUT_DIR, capture
from heimdall.acquire.choice import Probe, pick, snr_db
from heimdall.acquire.emulator import Emulator, Faults, Identity, Source
from heimdall.acquire.receiver import Receiver, parse_receiver, parse_status
from heimdall.acquire.session import Tuning
from heimdall.ingest.kiwi import read_kiwi, read_positions, scan

FAST = Tuning(77.5, connect_timeout_s=5.0, stall_timeout_s=1.5, max_lag_s=1.0)


@pytest.fixture(scope="module")
def kiwi_set(tmp_path_factory) -> list[Path]:
    """A simulated 3-station LF time-signal set, 12 s, as kiwirecorder files."""
    from heimdall.sim.jobs import simulated_jobs
    from heimdall.sim.kiwiwav import write_kiwi_set

    job, _ = next(iter(simulated_jobs("tdoa", "hf", 1, 4, "ci16_le", ["time-signal"], 12.0)))
    return sorted(write_kiwi_set(job, tmp_path_factory.mktemp("source")))


def _identity(wav: Path, firmware=(1, 834)) -> Identity:
    station = wav.name.split("_")[2]
    lat, lon, _ = read_positions([wav.parent / "gnss_pos"])[station]
    return Identity(station, lat, lon, firmware)


@contextlib.asynccontextmanager
async def _serving(emulators: list[Emulator]):
    servers = [await e.serve("127.0.0.1", 0) for e in emulators]
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers]
    finally:
        for s in servers:
            s.close()


def _capture(wavs, faults, tmp_path, seconds=3.0, firmware=None, stations=None):
    emulators = [
        Emulator(Source.from_wav(w), _identity(w, (firmware or {}).get(i, (1, 834))), f)
        for i, (w, f) in enumerate(zip(wavs, faults, strict=True))
    ]

    async def run():
        async with _serving(emulators) as ports:
            receivers = [Receiver("127.0.0.1", p, f"r{i}") for i, p in enumerate(ports)]
            return await capture(receivers, FAST, seconds, tmp_path / "cap", stations)

    return asyncio.run(run())


def _same_blocks(source: Path, copy: Path) -> int:
    """How many leading blocks of ``copy`` equal ``source``'s (stamp and samples); asserts all
    of ``copy``'s do."""
    a, b = scan(source), scan(copy)
    for x, y in zip(a.blocks, b.blocks, strict=False):
        assert (x.gnss_status, x.gps_seconds, x.gps_nanoseconds) == (
            y.gnss_status, y.gps_seconds, y.gps_nanoseconds,
        )  # fmt: skip
        assert a.content[x.data_offset : x.data_offset + 4 * x.samples] == (
            b.content[y.data_offset : y.data_offset + 4 * y.samples]
        )
    assert a.declared_rate_hz == b.declared_rate_hz
    return len(b.blocks)


def test_a_capture_is_the_receivers_stream_block_for_block(kiwi_set, tmp_path):
    result = _capture(kiwi_set[:3], [Faults()] * 3, tmp_path)
    assert result.refusal is None and len(result.recorded) == 3
    for wav, outcome in zip(kiwi_set, result.outcomes, strict=False):
        blocks = _same_blocks(wav, outcome.session.path)
        assert blocks * 512 / 12001 >= 3.0  # the whole window
        # ingest reads the copy's time as it reads the source's: the file name's date sets
        # the GPS week, and within the week the first sample's time is the same to 1 µs
        source, copy = read_kiwi(wav), read_kiwi(outcome.session.path)
        week_ns = 604_800 * 10**9
        offset_ns = (copy.time_ns - source.time_ns) % week_ns
        assert min(offset_ns, week_ns - offset_ns) < 1000
        assert copy.sample_rate_hz == pytest.approx(source.sample_rate_hz, abs=0.05)
    positions = read_positions([result.directory / "gnss_pos"])
    assert positions["r0"][:2] == pytest.approx((_identity(kiwi_set[0]).lat,
                                                 _identity(kiwi_set[0]).lon), abs=1e-6)  # fmt: skip
    manifest = (result.directory / "acquire.json").read_text()
    assert '"firmware": "v1.834"' in manifest and '"status": "recorded"' in manifest


def test_each_failure_a_receiver_shows_is_named_and_left_out(kiwi_set, tmp_path):
    wavs = (kiwi_set * 4)[:12]
    faults = [
        Faults(), Faults(), Faults(),
        Faults(busy=True), Faults(password="secret"), Faults(no_gnss=True),
        Faults(drop_after_s=1.0), Faults(stall_after_s=1.0), Faults(speed=0.4),
        Faults(reject_apps=True), Faults(gnss_age_s=200), Faults(time_limit_s=1.0),
    ]  # fmt: skip
    result = _capture(wavs, faults, tmp_path, seconds=4.0)
    codes = [None if o.ok else o.failure.code for o in result.outcomes]
    assert codes == [
        None, None, None, "busy", "password", "no_gnss", "dropped", "stalled", "lagging",
        "rejected", "no_gnss", "time_limited",
    ]  # fmt: skip
    assert result.refusal is None
    # what the user reads says what happened
    text = {o.receiver.name: str(o.failure) for o in result.outcomes if not o.ok}
    assert "channels are in use" in text["r3"] and "password refused" in text["r4"]
    assert "no GNSS fix" in text["r5"] and "connection closed after" in text["r6"]
    assert "no frame for 1.5 s" in text["r7"] and "behind real time" in text["r8"]
    assert "non-Kiwi apps" in text["r9"] and "GNSS fix is stale" in text["r10"]
    assert "inactivity limit (1 min)" in text["r11"]
    # the set in the folder is what may be localized together; partial files are set aside
    assert sorted(p.name.split("_")[2] for p in result.directory.glob("*.wav")) == [
        "r0", "r1", "r2",
    ]  # fmt: skip
    aside = sorted(p.name.split("_")[2] for p in (result.directory / LEFT_OUT_DIR).glob("*.wav"))
    assert aside == ["r10", "r11", "r6", "r7", "r8"]  # they had started recording
    for path in (result.directory / LEFT_OUT_DIR).glob("*.wav"):
        assert scan(path).blocks  # closed and valid as far as it got


def test_below_three_receivers_the_set_is_refused_saying_why(kiwi_set, tmp_path):
    result = _capture(kiwi_set[:3], [Faults(), Faults(busy=True), Faults()], tmp_path)
    assert result.refusal == "2 receiver(s) recorded; a time-difference fix needs 3"


def test_firmware_before_and_after_the_cic_filter_is_never_mixed(kiwi_set, tmp_path):
    wavs = (kiwi_set * 2)[:4]
    result = _capture(wavs, [Faults()] * 4, tmp_path, firmware={3: (1, 560)})
    assert [o.ok for o in result.outcomes] == [True, True, True, False]
    assert result.outcomes[3].failure.code == "firmware"
    assert "v1.560" in str(result.outcomes[3].failure)


def test_a_station_given_wins_over_the_reported_position(kiwi_set, tmp_path):
    result = _capture(kiwi_set[:3], [Faults()] * 3, tmp_path, stations={"r1": (10.0, 20.0)})
    assert result.outcomes[1].position == (10.0, 20.0)
    assert result.outcomes[1].position_source == "--station"
    assert read_positions([result.directory / "gnss_pos"])["r1"][:2] == (10.0, 20.0)


def test_cancelled_mid_capture_every_file_is_closed_and_valid(kiwi_set, tmp_path):
    emulators = [Emulator(Source.from_wav(w), _identity(w)) for w in kiwi_set[:3]]

    async def run():
        async with _serving(emulators) as ports:
            receivers = [Receiver("127.0.0.1", p, f"r{i}") for i, p in enumerate(ports)]
            task = asyncio.create_task(capture(receivers, FAST, 10.0, tmp_path / "cap"))
            while not list((tmp_path / "cap").glob("*.wav")) or not all(
                p.stat().st_size > 20_000 for p in (tmp_path / "cap").glob("*.wav")
            ):
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    kept = list((tmp_path / "cap").glob("*.wav"))  # in place: usable as far as they got
    assert len(kept) == 3
    for path in kept:
        assert len(scan(path).blocks) >= 5
    assert len(read_positions([tmp_path / "cap" / "gnss_pos"])) == 3
    manifest = (tmp_path / "cap" / "acquire.json").read_text()
    assert '"refusal": "interrupted' in manifest and '"status": "interrupted"' in manifest


@pytest.mark.slow
def test_ctrl_c_ends_the_command_cleanly(tmp_path):
    """SIGINT to `heimdall acquire kiwi` mid-capture: exit 130, the table of what was recorded,
    every file closed, valid and readable by `ingest kiwi`."""
    import signal
    import subprocess
    import sys

    from heimdall.harness.emulated_kiwis import emulated_kiwis
    from heimdall.ingest.kiwi import read_sets

    out = tmp_path / "cap"
    with emulated_kiwis("--simulate", "--receivers", "3", "--seconds", "20", count=3) as kiwis:
        acquire = subprocess.Popen(
            [sys.executable, "-m", "heimdall.cli", "acquire", "kiwi", *kiwis.addresses,
             "--freq-khz", "77.5", "--seconds", "60", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        while len([p for p in out.glob("*.wav") if p.stat().st_size > 100_000]) < 3:
            assert acquire.poll() is None, acquire.stderr.read()
            time.sleep(0.1)
        acquire.send_signal(signal.SIGINT)
        stdout, stderr = acquire.communicate(timeout=30)
    assert acquire.returncode == 130, stderr
    assert "stopped (Ctrl-C)" in stderr and "left out (interrupted)" in stdout
    (found,) = read_sets(sorted(out.glob("*.wav")))
    assert len(found.recordings) == 3 and not found.refused


def test_a_live_emulator_gives_each_connection_the_stretch_on_air(kiwi_set, tmp_path):
    """Live: two captures a second apart record different stretches, stamps and samples still
    paired as recorded."""
    emulators = [Emulator(Source.from_wav(w), _identity(w), live=True) for w in kiwi_set[:3]]

    async def run():
        async with _serving(emulators) as ports:
            receivers = [Receiver("127.0.0.1", p, f"r{i}") for i, p in enumerate(ports)]
            first = await capture(receivers, FAST, 1.5, tmp_path / "a")
            second = await capture(receivers, FAST, 1.5, tmp_path / "b")
            return first, second

    first, second = asyncio.run(run())
    a, b = scan(first.files[0]), scan(second.files[0])
    assert a.blocks[0].gps_seconds * 10**9 + a.blocks[0].gps_nanoseconds < (
        b.blocks[0].gps_seconds * 10**9 + b.blocks[0].gps_nanoseconds
    )
    source = scan(kiwi_set[0])
    stamps = {(x.gps_seconds, x.gps_nanoseconds): x for x in source.blocks}
    for y in b.blocks:
        x = stamps[(y.gps_seconds, y.gps_nanoseconds)]
        assert source.content[x.data_offset : x.data_offset + 2048] == (
            b.content[y.data_offset : y.data_offset + 2048]
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kiwi.example.org", ("kiwi.example.org", 8073, "kiwi_example_org_8073")),
        ("10.0.0.5:8074=Twente", ("10.0.0.5", 8074, "Twente")),
        ("host:80=my station/1", ("host", 80, "my_station_1")),
        ("[::1]:8073=v6", ("::1", 8073, "v6")),
    ],
)
def test_receiver_addresses(text, expected):
    r = parse_receiver(text)
    assert (r.host, r.port, r.name) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "a b", "host:80==="])
def test_bad_receiver_addresses_are_named(text):
    with pytest.raises(ValueError, match="receiver"):
        parse_receiver(text)


def test_the_status_page_is_read_as_receivers_write_it():
    page = parse_status(
        "status=active\noffline=no\nname=Twente WebSDR\nusers=2\nusers_max=4\n"
        "gps=(52.239000, 6.850000)\ngps_good=9\nfixes=1234\nsw_version=KiwiSDR_v1.834\n"
        "snr=18,21\n"
    )
    assert page.name == "Twente WebSDR" and page.free_channels == 2
    assert page.position == (52.239, 6.85) and page.gps_good == 9
    assert page.version == (1, 834) and page.snr_db == 21.0 and not page.offline


def test_snr_of_a_tone_and_of_noise():
    rng = np.random.default_rng(1)
    n = 24_000
    noise = (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2)
    # Welch, Hann, 256 points: a bin-centred tone's density is A²·N/(1.5·fs) (Hann's noise
    # bandwidth is 1.5 bins), white noise's is σ²/fs — A² = 1.5·1000/256 puts it 30 dB over
    amplitude = np.sqrt(1.5 * 1000 / 256)
    bin_hz = 12000.0 / 256
    tone = amplitude * np.exp(2j * np.pi * 21 * bin_hz / 12000.0 * np.arange(n))
    assert snr_db(noise + tone, 12000.0) == pytest.approx(30.0, abs=1.0)
    assert snr_db(noise, 12000.0) < 8.0


def test_the_pick_spreads_receivers_around_the_target():
    """Four strong receivers bunched north of the target and two weaker ones south-east and
    west: the pick takes one of the bunch and the two that close the geometry."""

    def probe(name, lat, lon, snr):
        return Probe(Receiver("h", 8073, name), parse_status("users=0\nusers_max=4\n"),
                     snr, (lat, lon))  # fmt: skip

    target = (50.0, 10.0)
    probes = [
        probe("n1", 53.0, 10.0, 30.0), probe("n2", 53.1, 10.3, 29.0),
        probe("n3", 52.9, 9.8, 28.0), probe("n4", 53.2, 10.1, 27.0),
        probe("se", 48.0, 12.5, 15.0), probe("w", 50.0, 6.0, 14.0),
    ]  # fmt: skip
    chosen = pick(probes, 3, target)
    assert [p.receiver.name for p in chosen] == ["n1", "se", "w"]
    assert all(p.verdict.startswith("passed over") for p in probes if p not in chosen)
    assert "strongest" in chosen[0].verdict


def _kiwiclient(tmp_path: Path) -> Path | None:
    """KiwiSDR's own client (jks-prv/kiwiclient): ``$KIWICLIENT_DIR``, or the snapshot the
    library's ``fetch`` leaves in /work/.mirror; None when neither is here."""
    import os
    import subprocess

    given = os.environ.get("KIWICLIENT_DIR")
    if given and (Path(given) / "kiwirecorder.py").exists():
        return Path(given)
    mirror = Path("/work/.mirror/jks-prv+kiwiclient/repo")
    if not mirror.exists():
        return None
    out = tmp_path / "kiwiclient"
    out.mkdir()
    archive = subprocess.run(["git", "--git-dir", str(mirror), "archive", "HEAD"],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


# kiwirecorder imports its bundled `samplerate`, which raises OSError (not ImportError) where
# libsamplerate is not installed; marked absent, it falls back to its own resampling (unused
# here: IQ at the receiver's rate).
_RUN_KIWIRECORDER = (
    "import runpy, sys; sys.modules['samplerate'] = None; sys.path.insert(0, sys.argv[1]); "
    "sys.argv = ['kiwirecorder.py'] + sys.argv[2:]; "
    "runpy.run_path(sys.path[0] + '/kiwirecorder.py', "
    "run_name='__main__')"
)


@pytest.mark.slow
def test_kiwisdrs_own_kiwirecorder_records_a_faithful_copy(kiwi_set, tmp_path):
    """`heimdall emulate kiwi --replay` as a subprocess, KiwiSDR's `kiwirecorder.py -m iq
    --kiwi-wav` recording 4 s from it: its blocks equal the source's, samples and stamps, and
    its gnss_pos file holds the position we gave."""
    import subprocess
    import sys
    import urllib.request

    from heimdall.harness.emulated_kiwis import emulated_kiwis

    client = _kiwiclient(tmp_path)
    if client is None:
        pytest.skip("KiwiSDR's kiwiclient is not here (set KIWICLIENT_DIR to a checkout)")
    out = tmp_path / "recorded"
    out.mkdir()
    with emulated_kiwis("--replay", str(kiwi_set[0]), "--name", "Station-A", "--position",
                        "50.5,7.25", count=1) as kiwi:  # fmt: skip
        port = kiwi.ports[0]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5).read()
        assert b"name=Station-A" in page and b"gps=(50.500000, 7.250000)" in page
        done = subprocess.run(
            [sys.executable, "-c", _RUN_KIWIRECORDER, str(client), "-s", "127.0.0.1",
             "-p", str(port), "-f", "77.5", "-m", "iq", "--kiwi-wav", "--tlimit", "4",
             "-d", str(out), "--station", "StationA", "-u", "heimdall-test", "--nq"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (copy,) = out.glob("*_iq.wav")
    assert copy.name.endswith("_77500_StationA_iq.wav")
    assert _same_blocks(kiwi_set[0], copy) * 512 / 12001 >= 4.0
    assert "[50.500000,7.250000]" in (out / "StationA.txt").read_text()


def test_candidates_are_probed_and_the_unusable_passed_over_with_why(kiwi_set, tmp_path):
    from heimdall.acquire.choice import choose

    wavs = (kiwi_set * 2)[:5]
    faults = [Faults(), Faults(), Faults(), Faults(busy=True), Faults(no_gnss=True)]
    emulators = [Emulator(Source.from_wav(w), _identity(w), f)
                 for w, f in zip(wavs, faults, strict=True)]  # fmt: skip

    async def run():
        async with _serving(emulators) as ports:
            candidates = [Receiver("127.0.0.1", p, f"c{i}") for i, p in enumerate(ports)]
            return await choose(candidates, 77.5, 3, None)

    chosen, probes = asyncio.run(run())
    assert sorted(r.name for r in chosen) == ["c0", "c1", "c2"]
    verdicts = {p.receiver.name: p.verdict for p in probes}
    assert verdicts["c3"] == "passed over: no free channel (4/4 in use)"
    assert verdicts["c4"].startswith("passed over: no GNSS fix (gps_good=0)")
    assert all(verdicts[n].startswith("chosen: SNR") for n in ("c0", "c1", "c2"))
    assert all(p.snr_db > 20 for p in probes[:3])  # a time-signal carrier, well heard


def test_receivers_given_without_a_name_take_their_own(kiwi_set, tmp_path):
    emulators = [Emulator(Source.from_wav(w), _identity(w)) for w in kiwi_set[:3]]
    emulators[2].identity = Identity("a name far too long to be a station's file name", 1, 2)

    async def run():
        async with _serving(emulators) as ports:
            receivers = [parse_receiver(f"127.0.0.1:{p}") for p in ports]
            return await capture(receivers, FAST, 1.0, tmp_path / "cap"), ports

    result, ports = asyncio.run(run())
    names = [o.receiver.name for o in result.outcomes]
    assert names == [_identity(kiwi_set[0]).name, _identity(kiwi_set[1]).name,
                     f"127_0_0_1_{ports[2]}"]  # fmt: skip
    assert set(read_positions([result.directory / "gnss_pos"])) == set(names)
