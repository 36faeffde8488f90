"""Time differences of arrival: geodesics, alignment, correlation, the fix, method selection."""

from __future__ import annotations

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, geodesic_m, propagation_m
from heimdall.report import error_m, inside_ellipse
from heimdall.schemas.job import Clock
from heimdall.sim.signals import make_signal
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig
from heimdall.tdoa.align import TimedCapture, align, fractional_resample
from heimdall.tdoa.correlate import pair_delays


def test_geodesic_matches_geographiclib_within_15_m():
    rng = np.random.default_rng(0)
    lat1, lat2 = rng.uniform(-70, 70, (2, 300))
    lon1 = rng.uniform(-180, 180, 300)
    lon2 = lon1 + rng.uniform(-15, 15, 300)
    ours = geodesic_m(lat1, lon1, lat2, lon2)
    reference = [
        Geodesic.WGS84.Inverse(*p)["s12"] for p in zip(lat1, lon1, lat2, lon2, strict=True)
    ]
    assert np.max(np.abs(ours - reference)) < 15.0


@pytest.mark.parametrize("kind", ["afsk", "4fsk"])
def test_closed_form_phase_equals_the_integrated_frequency(kind):
    rng = np.random.default_rng(1)
    signal = make_signal(kind, 0.05, rng)
    t = np.arange(0, 0.04, 1e-6)  # 1 MHz: numerical integration is exact to ~1e-3 rad
    phase = np.unwrap(np.angle(signal(t)))
    inst_hz = np.diff(phase) / (2 * np.pi * 1e-6)
    # an FM signal's instantaneous frequency stays within the offset ± its deviation
    limit = {"afsk": 3000.0, "4fsk": 1944.0}[kind]
    # a phase jump would read as a huge instantaneous frequency: the phase is continuous
    assert np.all(np.abs(inst_hz - signal.offset_hz) <= limit * 1.01)
    if kind == "afsk":  # FM by continuous-phase audio: the frequency itself is continuous
        assert np.max(np.abs(np.diff(inst_hz))) < 50


def test_fractional_resample_hits_the_signal_between_samples():
    rng = np.random.default_rng(2)
    signal = make_signal("nfm", 0.5, rng)
    fs = 50_000.0
    x = signal(np.arange(20_000) / fs).astype(np.complex64)
    positions = 100 + 0.37 + np.arange(15_000) * (1 + 2e-6)  # offset and a 2 ppm rate error
    got = fractional_resample(x, positions)
    want = signal(positions / fs)
    error_db = 10 * np.log10(np.mean(np.abs(got - want) ** 2) / np.mean(np.abs(want) ** 2))
    assert error_db < -50


def _captures(scenario) -> list[TimedCapture]:
    from heimdall.dsp.iq import decode_iq

    return [
        TimedCapture(i, r.receiver_id, r.lat, r.lon, r.alt_m,
                     decode_iq(r.inline_bytes(), r.datatype, r.num_samples), r.time_ns,
                     r.sample_rate_hz, r.center_frequency_hz, r.clock.uncertainty_ns)
        for i, r in enumerate(scenario.job.receivers)
    ]  # fmt: skip


def test_pair_delays_are_found_through_lo_offsets_and_rate_errors():
    """No echo, 1 ns clocks: what is left is the correlator's own error."""
    config = TdoaSimConfig(
        clock_sigma_ns=(1.0, 1.0), echo_db=(-200.0, -199.0), eirp_dbm=(65.0, 65.0)
    )
    scenario = TdoaScenarioGenerator(config, seed=4).next(kind="nfm")
    captures = _captures(scenario)
    pairs, _, _ = pair_delays(align(captures))
    lats, lons, alts = (
        np.array([getattr(c, a) for c in captures]) for a in ("lat", "lon", "alt_m")
    )
    tof = propagation_m(145.5e6, scenario.true_lat, scenario.true_lon, 10.0, lats, lons, alts)
    tof = tof / SPEED_OF_LIGHT_M_S
    strong = [p for p in pairs if min(scenario.snr_db[p.a], scenario.snr_db[p.b]) > 0]
    assert len(strong) >= 3
    errors = np.array([p.delay_s - (tof[p.a] - tof[p.b]) for p in strong])
    assert np.median(np.abs(errors)) < 0.3e-6  # 90 m of path


def test_reference_network_fixes_within_a_few_km_inside_their_ellipses(localizer):
    gen = TdoaScenarioGenerator(TdoaSimConfig(clock_sigma_ns=(50.0, 50.0)), seed=3)
    errors, inside = [], []
    for kind in ("nfm", "4fsk", "nfm", "4fsk"):
        scenario = gen.next(kind=kind)
        result = localizer.localize(scenario.job.model_copy(update={"method": "tdoa"}))
        assert result.status == "ok", result.error
        assert result.method == "tdoa" and result.tdoa is not None
        assert len(result.tdoa.pairs) >= 10 and result.timings_ms.tdoa > 0
        errors.append(error_m(result, scenario.true_lat, scenario.true_lon))
        inside.append(inside_ellipse(result, scenario.true_lat, scenario.true_lon))
    assert np.median(errors) < 2000.0  # RSS on the same network: tens of km
    assert sum(inside) >= 3


def _timed_job(network="reference", **update):
    scenario = TdoaScenarioGenerator(TdoaSimConfig(network=network), seed=8).next(kind="nfm")
    return scenario, scenario.job.model_copy(update=update)


def test_auto_uses_time_when_it_applies_and_says_so(localizer):
    _, job = _timed_job()
    assert localizer.localize(job).method == "tdoa"  # 7 stations: unambiguous, no prior needed
    assert localizer.localize(job.model_copy(update={"method": "hybrid"})).method == "hybrid"
    assert localizer.localize(job.model_copy(update={"method": "rss"})).method == "rss"


def test_an_hf_job_with_gnss_time_is_tdoa_only_and_without_it_is_refused(localizer):
    _, job = _timed_job(network="hf")
    result = localizer.localize(job)
    assert result.status == "ok" and result.method == "tdoa"
    untimed = job.model_copy(
        update={
            "receivers": [
                r.model_copy(update={"clock": Clock(source="ntp")}) for r in job.receivers
            ]
        }
    )
    failed = localizer.localize(untimed)
    assert failed.error.code == "unsupported_frequency"
    assert "no time differences either" in failed.error.message


def test_captures_that_do_not_overlap_have_no_common_time(localizer):
    _, job = _timed_job(method="tdoa")
    shifted = [
        r.model_copy(update={"time_ns": r.time_ns + i * 10**9}) for i, r in enumerate(job.receivers)
    ]
    result = localizer.localize(job.model_copy(update={"receivers": shifted}))
    assert result.error.code == "no_common_time" and "overlap" in result.error.message


def test_an_hf_set_from_kiwisdr_files_localizes_by_time(localizer, tmp_path):
    """The whole path from files: simulated KiwiSDR WAVs → ingest (GNSS fit) → TDoA."""
    from heimdall.ingest import assemble
    from heimdall.ingest.kiwi import read_sets
    from heimdall.sim.kiwiwav import write_kiwi_set

    config = TdoaSimConfig(network="hf", num_samples=(120_000, 120_000), clock_sigma_ns=(1, 1))
    scenario = TdoaScenarioGenerator(config, seed=6).next(kind="nfm")
    wavs = write_kiwi_set(scenario.job, tmp_path, stamp_noise_ns=40.0)
    (found,) = read_sets(wavs)
    job = assemble(found).job
    assert all(r.clock.source == "gnss" and r.clock.uncertainty_ns < 60 for r in job.receivers)
    for ingested, original in zip(job.receivers, scenario.job.receivers, strict=True):
        assert abs(ingested.sample_rate_hz / original.sample_rate_hz - 1) < 0.1e-6
    result = localizer.localize(job)
    assert result.status == "ok" and result.method == "tdoa", result.error
    assert error_m(result, scenario.true_lat, scenario.true_lon) < 10_000  # stations ~1000 km apart
    assert inside_ellipse(result, scenario.true_lat, scenario.true_lon)


def test_picture_is_a_png_of_the_fix(tmp_path, model_dir):
    import struct
    import zlib

    from heimdall.ops.picture import picture

    out = tmp_path / "fix.png"
    result = picture(model_dir, out, seed=2, network="reference", signal="nfm")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 3)
    pixels = rows[:, 1:].reshape(height, width, 3)
    assert (width, height) == (800, 800) and result.method == "tdoa"
    assert ((pixels == (220, 0, 0)).all(-1)).sum() > 50  # the ellipse and the estimate are drawn
    assert ((pixels == (0, 0, 0)).all(-1)).sum() >= 7 * 100  # seven receiver squares


def test_hybrid_without_a_usable_rss_prior_answers_by_time_and_says_so(localizer):
    config = TdoaSimConfig(network="random", random_receivers=(3, 3), clock_sigma_ns=(50, 50))
    gen = TdoaScenarioGenerator(config, seed=21)
    methods = set()
    for _ in range(8):
        job = gen.next(kind="nfm").job.model_copy(update={"method": "hybrid"})
        result = localizer.localize(job)
        if localizer.localize(job.model_copy(update={"method": "rss"})).status == "failed":
            assert result.status == "ok" and result.method == "tdoa"  # not failed for RSS's sake
        methods.add(result.method)
    assert methods == {"tdoa", "hybrid"}
