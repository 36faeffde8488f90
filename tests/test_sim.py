"""Simulator: reproducible, physically consistent, emits valid jobs."""

import numpy as np
import pytest

from heimdall.dsp.iq import decode_iq
from heimdall.schemas import IQJob
from heimdall.sim import REFERENCE_NETWORK, ScenarioGenerator, SimConfig
from heimdall.sim.propagation import PathLoss, free_space_loss_db


def test_same_seed_same_scenarios():
    a = ScenarioGenerator(seed=5).take(3)
    b = ScenarioGenerator(seed=5).take(3)
    for x, y in zip(a, b, strict=True):
        assert x.scenario_id == y.scenario_id
        np.testing.assert_array_equal(x.iq, y.iq)
    c = ScenarioGenerator(seed=6).next()
    assert c.scenario_id != a[0].scenario_id


def test_reference_network_stations():
    names = {s.receiver_id for s in REFERENCE_NETWORK}
    assert len(names) == 7 and {"torino", "genova", "milano"} <= names
    torino = next(s for s in REFERENCE_NETWORK if s.receiver_id == "torino")
    assert (torino.lat, torino.lon) == (45.044, 7.672)


def test_free_space_loss_golden():
    # FSPL(1 km, 145.5 MHz) = 20 log10(1) + 20 log10(145.5) + 32.45 dB (km, MHz form)
    assert free_space_loss_db(1000.0, 145.5e6) == pytest.approx(
        20 * np.log10(145.5) + 32.4478, abs=0.01
    )
    pl = PathLoss(3.0, 145.5e6)
    assert pl.loss_db(np.array([10_000.0]))[0] - pl.loss_db(np.array([1000.0]))[0] == pytest.approx(
        30.0
    )


def test_received_power_matches_truth():
    """Mean |x|² of the IQ equals signal + noise power the scenario says it injected."""
    for sc in ScenarioGenerator(SimConfig(network="reference"), seed=8).take(5):
        measured = np.mean(np.abs(sc.iq) ** 2, axis=1)
        expected = 10 ** (sc.signal_dbfs / 10) + 10 ** (sc.noise_dbfs / 10)
        np.testing.assert_allclose(measured, expected, rtol=0.1)


def test_signal_is_narrow_band():
    cfg = SimConfig(network="reference", noise_floor_dbm=(-200.0, -199.0), cw_probability=0.0)
    sc = ScenarioGenerator(cfg, seed=3).next()
    spectrum = np.abs(np.fft.fft(sc.iq[0])) ** 2
    sorted_power = np.sort(spectrum)[::-1]
    occupied = np.searchsorted(np.cumsum(sorted_power) / spectrum.sum(), 0.99) / len(spectrum)
    assert occupied < 0.5  # NFM of ≤ 5 kHz deviation in a 50 kHz band


def test_transmitters_inside_and_around_network():
    cfg = SimConfig(network="reference", missing_probability=0.0)
    gen = ScenarioGenerator(cfg, seed=9)
    lats = np.array([s.lat for s in REFERENCE_NETWORK])
    lons = np.array([s.lon for s in REFERENCE_NETWORK])
    outside, n = 0, 300
    for sc in gen.take(n):
        assert lats.min() - 0.4 < sc.true_lat < lats.max() + 0.4
        assert lons.min() - 0.5 < sc.true_lon < lons.max() + 0.5
        outside += not (
            lats.min() < sc.true_lat < lats.max() and lons.min() < sc.true_lon < lons.max()
        )
    assert 0.05 < outside / n < 0.6


def test_missing_receivers_keep_three():
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.5), seed=2)
    counts = [len(sc.stations) for sc in gen.take(200)]
    assert min(counts) >= 3 and max(counts) == 7 and min(counts) < 7


def test_random_networks_vary():
    gen = ScenarioGenerator(SimConfig(network="random", missing_probability=0.0), seed=4)
    sizes = {len(sc.stations) for sc in gen.take(40)}
    assert len(sizes) > 3 and min(sizes) >= 4 and max(sizes) <= 12


@pytest.mark.parametrize("datatype", ["cf32_le", "ci16_le"])
def test_job_is_valid_and_carries_the_iq(datatype):
    sc = ScenarioGenerator(SimConfig(network="reference"), seed=1).next()
    job = IQJob.model_validate_json(sc.to_job(datatype).to_json())
    assert job.job_id == sc.scenario_id
    assert [r.receiver_id for r in job.receivers] == [s.receiver_id for s in sc.stations]
    x = decode_iq(job.receivers[0].inline_bytes(), datatype, job.receivers[0].num_samples)
    atol = 0 if datatype == "cf32_le" else 2**-15
    np.testing.assert_allclose(x, sc.iq[0], atol=atol)
