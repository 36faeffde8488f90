"""Time differences of arrival: geodesics, alignment, correlation, the fix, method selection."""

from __future__ import annotations

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic
from scipy import stats

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, geodesic_m, propagation_m
from heimdall.harness.scoring import error_m, inside_an_ellipse, inside_ellipse
from heimdall.schemas.job import Clock
from heimdall.sim.signals import make_signal
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig
from heimdall.tdoa.align import TimedCapture, align, fractional_resample
from heimdall.tdoa.correlate import (
    BLOCK,
    FINE_LOBE,
    MAIN_LOBE,
    _pair,
    bin_snr,
    block_spectra,
    block_weights,
    equivalent_blocks,
    ml_gcc_sigma_s,
    pair_delays,
    shared_snr,
    spread_sigma_s,
)


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


def test_hf_sets_from_kiwisdr_files_localize_by_time(localizer, tmp_path):
    """The whole path from files: simulated KiwiSDR WAVs → ingest (GNSS fit) → TDoA, for 8 sets
    of 10 s. A 95 % ellipse misses one truth in 20 by design, so one set is no test of it: at
    least 6 of 8 (7.6 expected; 5 or fewer has a chance of 0.6 % if the ellipses are honest)."""
    from heimdall.ingest import assemble
    from heimdall.ingest.kiwi import read_sets
    from heimdall.sim.kiwiwav import write_kiwi_set

    config = TdoaSimConfig(network="hf", num_samples=(120_000, 120_000), clock_sigma_ns=(1, 1))
    gen = TdoaScenarioGenerator(config, seed=6)
    inside = []
    for k in range(8):
        scenario = gen.next(kind="nfm")
        (found,) = read_sets(write_kiwi_set(scenario.job, tmp_path / str(k), stamp_noise_ns=40.0))
        job = assemble(found).job
        assert all(r.clock.source == "gnss" and r.clock.uncertainty_ns < 60 for r in job.receivers)
        for ingested, original in zip(job.receivers, scenario.job.receivers, strict=True):
            assert abs(ingested.sample_rate_hz / original.sample_rate_hz - 1) < 0.1e-6
        result = localizer.localize(job)
        assert result.status == "ok" and result.method == "tdoa", result.error
        # stations ~1000 km apart, a sky wave at each (DESIGN §11): tens of µs per pair
        assert error_m(result, scenario.true_lat, scenario.true_lon) < 40_000
        inside.append(inside_ellipse(result, scenario.true_lat, scenario.true_lon))
    assert sum(inside) >= 6


def test_picture_is_a_png_of_the_fix(tmp_path, model_dir):
    import struct
    import zlib

    from heimdall.measure.picture import picture

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


def _synthetic_pairs(shift_s: np.ndarray, pair_sigma_s: float = 3e-6):
    """Pair delays of a transmitter inside the reference network, each receiver's arrival
    moved by ``shift_s`` (an echo's pull), with the geometry they came from."""
    from heimdall.sim.stations import REFERENCE_NETWORK
    from heimdall.tdoa.correlate import PairDelay
    from heimdall.tdoa.solve import Geometry

    lats = np.array([s.lat for s in REFERENCE_NETWORK])
    lons = np.array([s.lon for s in REFERENCE_NETWORK])
    alts = np.array([s.alt_m for s in REFERENCE_NETWORK])
    geometry = Geometry(lats, lons, alts, 145.5e6)
    truth = (float(lats.mean()) + 0.05, float(lons.mean()) - 0.07)
    arrival = geometry.delays_s(*truth) + shift_s
    count = len(lats)
    pairs = [
        PairDelay(a, b, float(arrival[a] - arrival[b]), pair_sigma_s, 1e-7, 1.0, 8)
        for a in range(count)
        for b in range(a + 1, count)
    ]
    return geometry, pairs, truth


def test_one_receiver_pulled_by_an_echo_moves_the_fix_less_than_least_squares_does():
    """The echo's shift is heavy-tailed: the robust fit (soft-L1 on receivers' arrivals) must
    give way less than an ordinary least-squares fit of the same arrivals (scipy, not ours)."""
    from scipy.optimize import least_squares

    from heimdall.geo.enu import LocalFrame
    from heimdall.tdoa.solve import locate

    shift = np.zeros(7)
    shift[2] = 12e-6  # a deep fade under a 20 µs echo
    geometry, pairs, truth = _synthetic_pairs(shift)
    sigma = np.full(7, 2.8e-6)
    fix = locate(geometry, pairs, sigma)
    frame = LocalFrame(*truth)

    def residual(p):
        lat, lon = frame.to_latlon(p[0], p[1])
        tof = geometry.delays_s(float(lat), float(lon))
        return np.array([q.delay_s - (tof[q.a] - tof[q.b]) for q in pairs]) * 1e6

    ordinary = least_squares(residual, [0.0, 0.0], x_scale=1e3).x
    robust_m = np.hypot(*frame.to_enu(fix.lat, fix.lon)[:2])
    ordinary_m = np.hypot(*ordinary)
    assert ordinary_m > 500  # the shift matters
    assert robust_m < 0.5 * ordinary_m


def test_a_receiver_whose_arrival_misfits_gets_the_sigma_its_misfit_shows():
    """Closed form: arrivals off by ``e`` give pair residuals e_a − e_b, which leave the common
    time free; the receiver misfit is e − median(e) and its σ is that misfit × √(R/(R−3))
    (3 unknowns spent), never below the nominal σ; with 3 receivers there is no redundancy and
    the nominal σ stands, and with 4 (one degree of freedom: a single misfit that cannot say
    which receiver is off) too."""
    from heimdall.tdoa.correlate import PairDelay
    from heimdall.tdoa.solve import empirical_sigma_s

    def pairs_of(count):
        return [PairDelay(a, b, 0.0, 1e-6, 1e-7, 1.0, 8)
                for a in range(count) for b in range(a + 1, count)]  # fmt: skip

    nominal = np.full(6, 1e-6)
    e = np.array([9e-6, 0.0, 0.0, 0.0, 0.0, 0.0])
    pairs = pairs_of(6)
    residual = np.array([e[p.a] - e[p.b] for p in pairs])
    expected = np.maximum(nominal, np.abs(e - np.median(e)) * np.sqrt(6 / 3))
    np.testing.assert_allclose(empirical_sigma_s(residual, pairs, nominal), expected, rtol=1e-9)
    assert expected[0] == pytest.approx(9e-6 * np.sqrt(2))  # its whole misfit, not the nominal
    assert expected[1] == 1e-6  # the others keep theirs: no share of its misfit (e/R vs the mean)

    # two receivers off in opposite directions, one weak pair left out: still each its own
    e2 = np.array([6e-6, -4e-6, 0.0, 0.0, 0.0, 0.0])
    some = [p for p in pairs if (p.a, p.b) != (4, 5)]
    residual2 = np.array([e2[p.a] - e2[p.b] for p in some])
    expected2 = np.maximum(nominal, np.abs(e2) * np.sqrt(6 / 3))
    np.testing.assert_allclose(empirical_sigma_s(residual2, some, nominal), expected2, rtol=1e-9)

    for count in (3, 4):  # 0 or 1 degree of freedom: no receiver stands out
        few = pairs_of(count)
        residual_few = np.array([e[p.a] - e[p.b] for p in few])
        np.testing.assert_array_equal(
            empirical_sigma_s(residual_few, few, nominal[:count]), nominal[:count]
        )


def test_a_weak_pairs_wrong_peak_does_not_reweigh_the_receivers_it_joins():
    """The robust fit's receiver σ: one weak pair (σ 300 µs) 200 µs off leaves both of its
    receivers at their nominal σ, their six strong pairs agreeing; a receiver whose strong
    pairs are all 12 µs off gets the closed form σ·(1 + (z/0.4)²)^¼, z = 12·6/7 µs / σ (its
    misfit against the mean of 7 equally precise arrivals); a receiver timed only by weak
    pairs, all 430 µs off, leaves the other six at their nominal σ. Counted equally, the weak
    pair alone put 200/7 µs on each of its two receivers (σ × 5); against the plain mean of
    the arrivals, the 430 µs receiver put 430/7 µs on each of the others (σ × 7.6), and the
    fit gave their strong pairs away. With 4 receivers the plain mean stands."""
    from heimdall.tdoa.correlate import PairDelay
    from heimdall.tdoa.solve import ROBUST_SCALE, robust_sigma_s

    nominal = np.full(7, 2.7e-6)
    pairs = [PairDelay(a, b, 0.0, 300e-6 if (a, b) == (0, 1) else 4e-6, 1e-7, 0.9, 8)
             for a in range(7) for b in range(a + 1, 7)]  # fmt: skip
    weak = np.array([200e-6 if (p.a, p.b) == (0, 1) else 0.0 for p in pairs])
    sigma = robust_sigma_s(weak, pairs, nominal)
    assert np.all(sigma[:2] < 1.01 * nominal[:2])

    strong = [p for p in pairs if (p.a, p.b) != (0, 1)] + [PairDelay(0, 1, 0.0, 4e-6, 1e-7, 0.9, 8)]
    e = np.array([12e-6, 0, 0, 0, 0, 0, 0])
    off = np.array([e[p.a] - e[p.b] for p in strong])
    z = 12e-6 * 6 / 7 / 2.7e-6
    expected = 2.7e-6 * (1 + (z / ROBUST_SCALE) ** 2) ** 0.25
    assert robust_sigma_s(off, strong, nominal)[0] == pytest.approx(expected, rel=1e-6)

    lone = [PairDelay(a, b, 0.0, 200e-6 if b == 6 else 4e-6, 1e-7, 0.9, 8)
            for a in range(7) for b in range(a + 1, 7)]  # fmt: skip
    late = np.array([430e-6 if p.b == 6 else 0.0 for p in lone])
    sigma = robust_sigma_s(late, lone, nominal)
    assert np.all(sigma[:6] < 1.01 * nominal[:6])
    assert sigma[6] > 10 * nominal[6]

    # four receivers cannot say which one is off: the plain mean stands, and the three
    # strong ones read 430/4 µs each
    four = [PairDelay(a, b, 0.0, 200e-6 if b == 3 else 4e-6, 1e-7, 0.9, 8)
            for a in range(4) for b in range(a + 1, 4)]  # fmt: skip
    late4 = np.array([430e-6 if p.b == 3 else 0.0 for p in four])
    z4 = 430e-6 / 4 / 2.7e-6
    expected4 = 2.7e-6 * (1 + (z4 / ROBUST_SCALE) ** 2) ** 0.25
    assert robust_sigma_s(late4, four, nominal[:4])[0] == pytest.approx(expected4, rel=1e-6)


def test_an_echo_pulled_receiver_leaves_the_truth_inside_the_95_ellipse():
    """A 4 µs pull on one of 7 receivers (nominal σ 1 µs, under the pair-outlier test): the fix
    moves, and its ellipse — from the receivers' σ as the residuals show them, not the robust
    fit's weights — still holds the truth (χ²₂ 95 %)."""
    from heimdall.geo.enu import LocalFrame
    from heimdall.tdoa.solve import locate

    shift = np.zeros(7)
    shift[5] = 4e-6
    geometry, pairs, truth = _synthetic_pairs(shift, pair_sigma_s=1.4e-6)
    fix = locate(geometry, pairs, np.full(7, 1e-6))
    offset = LocalFrame(fix.lat, fix.lon).to_enu(*truth)[:2]
    assert np.hypot(*offset) > 100  # the pull moved the fix
    assert offset @ np.linalg.inv(fix.covariance_en_m2) @ offset < 5.991


def test_a_strong_vhf_time_signal_pairs_sigma_covers_its_error_like_a_gaussians():
    """Strong pairs (peak quality > 0.9) of 0.2 s VHF time-signal captures, the simulator's
    echoes (0.5–20 µs, −20…−3 dB) and 50 ns clocks: the published σ (floor included) holds the
    error against the geometry within 0.674 σ about half the time and within 1.96 σ about 95 %
    (a unit Gaussian's 0.50 and 0.95), not 0.81 and 0.98 as with the floor of below 30 MHz
    (3.2 µs ⊕ 0.003/B_rms) at VHF too."""
    config = TdoaSimConfig(
        num_samples=(10_000, 10_000), eirp_dbm=(65.0, 65.0), clock_sigma_ns=(50.0, 50.0)
    )
    gen = TdoaScenarioGenerator(config, seed=21)
    z = []
    for _ in range(12):
        scenario = gen.next(kind="time-signal")
        flight_s = scenario.flight_s()
        ids = [r.receiver_id for r in scenario.job.receivers]
        pairs, _, _ = pair_delays(align(_captures(scenario)))
        z += [
            abs(p.delay_s - (flight_s[ids[p.a]] - flight_s[ids[p.b]])) / p.sigma_s
            for p in pairs
            if p.peak_quality > 0.9
        ]
    z = np.array(z)
    assert len(z) >= 150
    assert 0.45 <= np.mean(z <= 0.674) <= 0.70
    assert np.mean(z <= 1.96) >= 0.90


def test_pair_sigma_is_honest_for_a_weak_4fsk_signal():
    """At 0 dB SNR per receiver the delay errors, divided by each pair's statistical σ, have
    a median |z| like a unit Gaussian's (0.67): neither too sure nor too timid."""
    rng = np.random.default_rng(11)
    fs, n = 50_000.0, 30_000
    z = []
    for _ in range(12):
        signal = make_signal("4fsk", 1.0, rng)
        delays = np.concatenate([[0.0], rng.uniform(-50e-6, 50e-6, 2)])
        captures = []
        for i, d in enumerate(delays):
            t = 0.05 + np.arange(n) / fs
            noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(0.5)
            x = signal(t - d) * np.exp(1j * rng.uniform(0, 2 * np.pi)) + noise
            captures.append(
                TimedCapture(i, f"r{i}", 50 + 0.3 * i, 8 + 0.2 * i, 100.0,
                             x.astype(np.complex64), 10**18, fs, 145.5e6, 50.0)
            )  # fmt: skip
        pairs, _, _ = pair_delays(align(captures), floor_s=0.0)
        z += [(p.delay_s - (delays[p.a] - delays[p.b])) / p.stat_s for p in pairs]
    assert 0.4 < np.median(np.abs(z)) < 1.2


def test_captures_given_as_decoders_are_read_once_and_not_kept():
    rng = np.random.default_rng(5)
    signal = make_signal("nfm", 0.5, rng)
    reads = []

    def decoder(i):
        def read():
            reads.append(i)
            return signal(0.05 + np.arange(10_000) / 50_000.0).astype(np.complex64)

        return read

    captures = [
        TimedCapture(i, f"r{i}", 50.0 + 0.1 * i, 8.0, 0.0, decoder(i), 10**18, 50_000.0,
                     145.5e6, 50.0, num_samples=10_000)
        for i in range(3)
    ]  # fmt: skip
    aligned = align(captures)
    assert sorted(reads) == [0, 1, 2]
    assert all(len(c.samples) == 0 for c in aligned.captures)
    assert np.allclose(aligned.rows[0], aligned.rows[1], atol=1e-3)


def test_three_stations_that_cannot_choose_show_both_crossings(localizer):
    """Three receivers, two hyperbola crossings fitting the delays equally well: the result says
    so (``tdoa.ambiguous``) and carries the other crossing with its own ellipse, in
    ``alternatives`` and in the GeoJSON; one of the two ellipses holds the truth."""
    from heimdall.geo.ellipse import mahalanobis_sq
    from heimdall.geo.enu import LocalFrame

    config = TdoaSimConfig(network="random", random_receivers=(3, 3), clock_sigma_ns=(50, 50))
    gen = TdoaScenarioGenerator(config, seed=5)
    scenario = [gen.next(kind="4fsk") for _ in range(5)][-1]
    result = localizer.localize(scenario.job.model_copy(update={"method": "tdoa"}))
    assert result.status == "ok" and result.tdoa.ambiguous
    (other,) = [a for a in result.alternatives if a.relative_likelihood >= 0.2]
    assert other.ellipse.confidence == result.ellipse.confidence
    assert np.all(np.linalg.eigvalsh(np.array(other.covariance_en_m2)) > 0)
    kinds = [f["properties"]["kind"] for f in result.geojson["features"]]
    assert kinds[:4] == ["estimate", "uncertainty_ellipse", "alternative", "alternative_ellipse"]
    limit = -2 * np.log(1 - 0.95)
    held = []
    for lat, lon, cov in [
        (result.position.lat, result.position.lon, result.covariance_en_m2),
        (other.lat, other.lon, other.covariance_en_m2),
    ]:
        offset = LocalFrame(lat, lon).to_enu(scenario.true_lat, scenario.true_lon)[:2]
        held.append(float(mahalanobis_sq(offset, np.array(cov))) <= limit)
    assert any(held)
    assert inside_an_ellipse(result, scenario.true_lat, scenario.true_lon) is True
    assert inside_ellipse(result, scenario.true_lat, scenario.true_lon) == held[0]


def test_simulated_bandwidth_is_the_rms_formula_and_nan_when_nothing_was_sent():
    """Two equal tones at ±300 Hz have B_rms = 300 Hz; a CW capture with the key up for the
    whole window has no bandwidth (NaN, and no division warning)."""
    import warnings

    from heimdall.sim.tdoa import _rms_bandwidth_hz

    t = np.arange(1000) / 1000.0
    tones = np.exp(2j * np.pi * 300 * t) + np.exp(-2j * np.pi * 300 * t)
    assert _rms_bandwidth_hz(tones, 1000.0) == pytest.approx(300.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_rms_bandwidth_hz(np.zeros(1000, complex), 1000.0))


def _lf_station_fix(transmitter, weak_fourth: bool = False):
    """A fix from exact LF pair delays at three stations (receiver σ 3 µs), its pairs'
    covariance and geometry; with ``weak_fourth``, a fourth station joined to the second by one
    pair of σ 300 µs (a weak peak): four receivers, one degree of freedom."""
    from heimdall.tdoa.correlate import PairDelay
    from heimdall.tdoa.solve import Geometry, locate

    stations = [(45.0, 0.0), (45.0, 4.0), (47.5, 2.0)] + [(43.0, 7.0)] * weak_fourth
    count = len(stations)
    geometry = Geometry(np.array([s[0] for s in stations]), np.array([s[1] for s in stations]),
                        np.zeros(count), 77.5e3)  # fmt: skip
    arrival = geometry.delays_s(*transmitter)
    order = [(0, 1, 1e-7), (0, 2, 1e-7), (1, 2, 1e-7)] + [(1, 3, 3e-4)] * weak_fourth
    pairs = [PairDelay(a, b, float(arrival[a] - arrival[b]),
                       float(np.hypot(3e-6 * np.sqrt(2), own)), own, 1.0, 8)
             for a, b, own in order]  # fmt: skip
    incidence = np.zeros((len(order), count))  # written out, not solve.incidence: the
    for row, (a, b, _) in enumerate(order):  # brute-force reference stays apart from the solver
        incidence[row, [a, b]] = [1.0, -1.0]
    own_s2 = np.diag([max(own, 1e-7) ** 2 for _, _, own in order])
    covariance_s2 = incidence @ incidence.T * (3e-6) ** 2 + own_s2
    return locate(geometry, pairs, np.full(count, 3e-6)), geometry, pairs, covariance_s2


def _d2_of(points_en_m: np.ndarray, covariance_en_m2) -> np.ndarray:
    return np.einsum("ki,ij,kj->k", points_en_m, np.linalg.inv(covariance_en_m2), points_en_m)


@pytest.mark.parametrize(
    ("transmitter", "bends", "weak_fourth"),
    [((49.5, 7.0), True, False), ((46.0, 2.0), False, False), ((49.5, 7.0), True, True)],
)
def test_three_or_four_station_ellipse_holds_the_likelihoods_own_95_region(
    transmitter, bends, weak_fourth
):
    """Brute force, independent of the solver: −2 log likelihood of the pair delays on a
    3 km grid around the fix; every point within χ²₂(95 %) = 5.991 of its minimum must be in
    the fix's 95 % ellipse. Far outside the stations the region is a bent valley that the
    ellipse of the curvature at the fix, (JᵀC⁻¹J)⁻¹ by finite differences, misses; inside them
    the two agree and nothing is widened. A fourth station joined by one weak pair leaves the
    valley as it was: four receivers are widened along it too."""
    from heimdall.geo.enu import LocalFrame

    fix, geometry, pairs, covariance_s2 = _lf_station_fix(transmitter, weak_fourth)
    frame = LocalFrame(fix.lat, fix.lon)
    grid_m = np.arange(-900e3, 900e3 + 1, 3e3)
    east, north = np.meshgrid(grid_m, grid_m)
    tof = geometry.delays_s(*frame.to_latlon(east, north))
    measured = np.array([p.delay_s for p in pairs])
    residual = measured - np.stack([tof[..., p.a] - tof[..., p.b] for p in pairs], axis=-1)
    cost = np.einsum("...i,ij,...j->...", residual, np.linalg.inv(covariance_s2), residual)
    inside = cost - cost.min() <= 5.991
    region = np.stack([east[inside], north[inside]], axis=1)

    here = geometry.delays_s(fix.lat, fix.lon)
    columns = []
    for step in np.eye(2) * 10.0:
        there = geometry.delays_s(*frame.to_latlon(*step))
        columns.append([(there[p.a] - there[p.b] - here[p.a] + here[p.b]) / 10.0 for p in pairs])
    jac = np.array(columns).T
    curvature = np.linalg.inv(jac.T @ np.linalg.inv(covariance_s2) @ jac)

    assert _d2_of(region, fix.covariance_en_m2).max() <= 5.991 * 1.05  # a 3 km grid's rounding
    if bends:
        assert _d2_of(region, curvature).max() > 5.991 * 1.2  # the premise: it would miss
    else:
        scale_m2 = np.abs(curvature).max()
        np.testing.assert_allclose(fix.covariance_en_m2, curvature, rtol=0.02, atol=0.02 * scale_m2)


@pytest.mark.parametrize("length", [10_000, 8 * BLOCK])
def test_noise_bins_read_zero_snr_on_average_for_overlapping_and_separate_blocks(length):
    """White noise only: the block-averaged power's Gamma shape measured over many bins is what
    ``equivalent_blocks`` says (Welch's overlap correction), and ``bin_snr`` measures the
    noise's mean power, so a noise bin reads only its own fluctuation above the mean, not the
    ≈ 0.7 a quantile taken as the mean gives (which weighted thousands of noise bins)."""
    rng = np.random.default_rng(5)
    noise = (rng.standard_normal((8, length)) + 1j * rng.standard_normal((8, length))).astype(
        np.complex64
    )
    power = (np.abs(block_spectra(noise)) ** 2).mean(axis=1)  # [rows, bins]
    # every other bin of the ×2 zero-padded grid: nearly independent samples of one row
    samples = power[:, ::2] / power[:, ::2].mean(axis=1, keepdims=True)
    shape = 1.0 / samples.var()
    blocks = equivalent_blocks(length)
    assert blocks == pytest.approx(shape, rel=0.08)
    expected_mean = 2.0 * np.sum(np.hanning(BLOCK) ** 2)  # E|Σ w·n|², unit-variance real and imag
    snr = bin_snr(power, blocks)
    mean_noise = power / (snr + 1.0)  # where snr > 0 the bin's reference is the mean noise
    assert np.median(mean_noise[snr > 0]) == pytest.approx(expected_mean, rel=0.05)
    # a noise bin's SNR is max(G − 1, 0) for G ~ Gamma(blocks, 1/blocks): 0.14–0.20 on average
    clipped = stats.gamma(blocks, scale=1.0 / blocks).expect(lambda g: max(g - 1.0, 0.0))
    assert np.mean(snr) == pytest.approx(clipped, rel=0.15)


def _one_emission_at_three_receivers(length: int, in_band_snr: list[float], rng):
    """Block-averaged powers ``[3, F]`` of one band-limited emission (±1 kHz of 50 kHz) heard at
    each receiver with the in-band per-bin SNR given, over unit white noise; and the band."""
    fs = 50_000.0
    freqs = np.fft.fftfreq(length, 1 / fs)
    band = np.abs(freqs) < 1_000.0
    emission = np.fft.ifft(
        np.fft.fft(rng.standard_normal(length) + 1j * rng.standard_normal(length)) * band
    )
    rows = np.stack([
        np.sqrt(snr) * emission
        + rng.standard_normal(length) + 1j * rng.standard_normal(length)
        for snr in in_band_snr
    ]).astype(np.complex64)  # fmt: skip
    power = (np.abs(block_spectra(rows)) ** 2).mean(axis=1)
    grid = np.fft.fftfreq(power.shape[1], 1 / fs)
    return power, np.abs(grid) < 900.0, np.abs(grid) > 1_100.0  # in band, out of it (edges apart)


def test_a_weak_receivers_snr_is_its_gain_times_the_emissions_shape_not_its_noise():
    """One emission at receivers of in-band SNR 30, 0.3 and 0, in twelve 0.2 s captures (4
    overlapping blocks). ``shared_snr`` reads the receivers' in-band mean SNR without bias (over
    the captures within 10 %; one capture's 100 or so independent bins leave the weak gain
    ±20 %), the deaf receiver under a third of the weak one, and nothing outside the band but in
    at most 0.1 % of its bins. A receiver's own per-bin SNR (``bin_snr``), the premise, reads
    every noise bin's excess over the mean: E max(G − 1, 0) for G ~ Gamma(blocks, 1/blocks)."""
    length = 10_000
    blocks = equivalent_blocks(length)
    ratios = []
    for seed in range(11, 23):
        power, in_band, out_of_band = _one_emission_at_three_receivers(
            length, [30.0, 0.3, 0.0], np.random.default_rng(seed)
        )
        snr = shared_snr(power, blocks)
        ratios.append([snr[0, in_band].mean() / 30.0, snr[1, in_band].mean() / 0.3])
        assert snr[2, in_band].mean() < 0.1
        assert (snr[:, out_of_band] > 0).mean() <= 1e-3
    assert np.mean(ratios, axis=0) == pytest.approx([1.0, 1.0], abs=0.1)
    own = bin_snr(power, blocks)
    clipped = stats.gamma(blocks, scale=1.0 / blocks).expect(lambda g: max(g - 1.0, 0.0))
    assert np.mean(own[1:, out_of_band]) == pytest.approx(clipped, rel=0.2)


def test_a_weak_pairs_carter_sigma_follows_its_true_coherence_with_the_shared_snr():
    """Carter's σ of a pair of in-band SNR 30 and 0.3, from the formula with the true coherence
    γ² = s₁s₂/((1 + s₁)(1 + s₂)) in the band and 0 outside, is what the shared SNR's weights
    give (eight 0.2 s captures: each within 0.7–1.4 ×, their median within 15 %); the
    receivers' own per-bin SNRs weigh noise bins across the band, whose frequencies read it
    several times smaller than it is."""
    length = 10_000
    blocks = equivalent_blocks(length)
    freqs = np.fft.fftfreq(2 * BLOCK, 1 / 50_000.0)

    def carter_s(snr):
        coherence = snr[0] * snr[1] / ((1 + snr[0]) * (1 + snr[1]))
        return ml_gcc_sigma_s(coherence / (1 - coherence), freqs, 4)

    band = np.abs(freqs) < 1_000.0
    truth = carter_s(np.stack([np.where(band, 30.0, 0.0), np.where(band, 0.3, 0.0)]))
    shared, own = [], []
    for seed in range(11, 19):
        power, _, _ = _one_emission_at_three_receivers(
            length, [30.0, 0.3, 0.0], np.random.default_rng(seed)
        )
        shared.append(carter_s(shared_snr(power, blocks)) / truth)
        own.append(carter_s(bin_snr(power, blocks)) / truth)
    assert min(shared) >= 0.7 and max(shared) <= 1.4
    assert np.median(shared) == pytest.approx(1.0, abs=0.15)
    assert max(own) < 1 / 3


def test_a_pairs_blocks_find_their_own_peaks_within_the_main_lobe_and_sigma_shows_their_spread():
    """Four blocks whose delays differ by up to ±0.3 main lobes (how far noise moves a weak
    pair's peak): σ is their spread, std/√4 widened to Student's t 95 % interval (a block search
    held near the summed peak squeezes it), and the delay is their mean."""
    fs = 50_000.0
    freqs = np.fft.fftfreq(2 * BLOCK, 1 / fs)
    band = np.abs(freqs) < 2_000.0
    lobe = fs / np.sqrt(np.mean(freqs[band] ** 2))  # samples per 1/B_rms (≈ 43)
    shifts = 5.0 + np.array([-0.3, -0.1, 0.1, 0.3]) * lobe  # b later than a, in samples
    rng = np.random.default_rng(3)
    xa = (rng.standard_normal((4, freqs.size)) + 1j * rng.standard_normal((4, freqs.size))) * band
    xb = xa * np.exp(-2j * np.pi * freqs * shifts[:, None] / fs)
    delay_s, stat_s, _, used = _pair(
        xa, xb, np.where(band, 0.99, 0.0), freqs, fs, 1e-3, FINE_LOBE * lobe, MAIN_LOBE * lobe
    )
    assert used == 4
    t_over_normal = stats.t.ppf(0.975, 3) / stats.norm.ppf(0.975)  # 4 blocks: 3 dof
    spread_s = np.std(shifts, ddof=1) / np.sqrt(4) / fs * t_over_normal
    assert stat_s == pytest.approx(spread_s, rel=0.05)
    assert delay_s == pytest.approx(-shifts.mean() / fs, abs=0.05 * spread_s)


@pytest.mark.parametrize("blocks", [3, 4, 12])
def test_a_block_spread_sigma_holds_the_mean_in_1_96_sigma_95_percent_of_the_time(blocks):
    """Gaussian block delays, 40 000 draws: the mean is within 1.96 σ of the truth 95 % of the
    time with the σ the spread gives; the bare std/√n holds it 0.81 of the time for 3 blocks,
    0.85 for 4 and 0.92 for 12: a spread of a few blocks is often small by chance."""
    rng = np.random.default_rng(19)
    delays_s = rng.normal(0.0, 1e-6, (40_000, blocks))
    sigma_s = np.array([spread_sigma_s(d) for d in delays_s])
    inside = np.abs(delays_s.mean(axis=1)) <= 1.96 * sigma_s
    assert inside.mean() == pytest.approx(0.95, abs=0.005)
    bare_s = delays_s.std(axis=1, ddof=1) / np.sqrt(blocks)
    bare = (np.abs(delays_s.mean(axis=1)) <= 1.96 * bare_s).mean()
    assert bare < (0.90 if blocks <= 4 else 0.945)


def test_blocks_weighed_by_their_own_peak_give_the_inverse_variance_mean_and_its_t_interval():
    """Four blocks of unequal signal (peak qualities 0.9, 0.6, 0.3, 0.15: a time signal's mark,
    a voice's pause), each delay Gaussian with Carter's variance ∝ (1 − q²)/q², 40 000 draws.
    The weighted mean's RMS error is √((1/Σw)/(Σ(1/w)/n²)) of the plain mean's (0.24: the
    inverse-variance mean, from the variances alone), and its σ from the weighted spread holds
    it within 1.96 σ 95 % of the time (Student's t of 3 dof: exact when the weights are right
    up to one scale, which the spread estimates)."""
    quality = np.array([0.9, 0.6, 0.3, 0.15])
    variance = (1 - quality**2) / quality**2 * 1e-12  # s²
    rng = np.random.default_rng(23)
    delays_s = rng.normal(0.0, np.sqrt(variance), (40_000, 4))
    weights = block_weights(quality)
    weighted = delays_s @ weights / weights.sum()
    ratio = np.sqrt(np.mean(weighted**2) / np.mean(delays_s.mean(axis=1) ** 2))
    inverse = 1 / variance
    expected = np.sqrt((1 / inverse.sum()) / (variance.sum() / 16))
    assert ratio == pytest.approx(expected, rel=0.03)
    sigma_s = np.array([spread_sigma_s(d, weights) for d in delays_s])
    assert (np.abs(weighted) <= 1.96 * sigma_s).mean() == pytest.approx(0.95, abs=0.005)


def test_pairs_that_fix_only_a_hyperbola_are_refused_not_drawn():
    """One pair measured to 3 µs and the other 20 hopeless (σ 50 ms, a hundred times any
    baseline of the network): the delays put the transmitter on one hyperbola, and along it
    the Fisher information gives σ of the order of c·50 ms/√20 ≈ 3 000 km, past the 3 × extent
    bound (440 km): ``unplaced``, and with a clear peak at only 2 receivers, refused. The same
    curve with a third receiver's clear (if wrong) peak is kept; every pair at 3 µs places the
    transmitter, truth in the 95 % ellipse, even with no clear peak. Three receivers with the
    hopeless pairs are not ``unplaced``: their valley-wide ellipse (past the bound too) is how
    a 3-station fix says it."""
    from heimdall.geo.enu import LocalFrame
    from heimdall.schemas.errors import NoSignal
    from heimdall.tdoa.correlate import PairDelay
    from heimdall.tdoa.fuse import refuse_unplaced
    from heimdall.tdoa.solve import locate, max_sigma_m, unplaced

    geometry, pairs, truth = _synthetic_pairs(np.zeros(7))
    receivers = np.full(7, 2e-6)

    def hopeless(quality_02: float) -> list[PairDelay]:
        """Pair 0-1 at 3 µs, the rest σ 50 ms; pair 0-2 with this peak quality (others 0.1)."""
        quality = {(0, 2): quality_02}
        return [p if (p.a, p.b) == (0, 1)
                else PairDelay(p.a, p.b, p.delay_s, 5e-2, 5e-2, quality.get((p.a, p.b), 0.1), 4)
                for p in pairs]  # fmt: skip

    curve = locate(geometry, hopeless(0.1), receivers)
    assert unplaced(geometry, curve)
    with pytest.raises(NoSignal, match="at 2 receivers"):
        refuse_unplaced(geometry, curve)
    heard_at_three = locate(geometry, hopeless(0.9), receivers)
    assert unplaced(geometry, heard_at_three)
    refuse_unplaced(geometry, heard_at_three)

    three = locate(geometry, [p for p in hopeless(0.1) if p.b < 3], receivers)
    assert np.sqrt(np.linalg.eigvalsh(three.covariance_en_m2).max()) > 0.9 * max_sigma_m(geometry)
    assert not unplaced(geometry, three)

    quiet = [PairDelay(p.a, p.b, p.delay_s, p.sigma_s, p.stat_s, 0.3, 8) for p in pairs]
    for placed in (locate(geometry, pairs, receivers), locate(geometry, quiet, receivers)):
        assert not unplaced(geometry, placed)
        refuse_unplaced(geometry, placed)
        offset = LocalFrame(placed.lat, placed.lon).to_enu(*truth)[:2]
        assert offset @ np.linalg.inv(placed.covariance_en_m2) @ offset < 5.991
