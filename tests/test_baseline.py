"""RSS baseline: exact on noiseless data, reads power from IQ, coded failure when deaf."""

import numpy as np
import pytest

from heimdall.baseline import localize_rss, read_power
from heimdall.geo import LocalFrame
from heimdall.schemas.errors import TooFewReceivers
from heimdall.sim import REFERENCE_NETWORK
from heimdall.sim.waveform import complex_noise, nfm

LATS = np.array([s.lat for s in REFERENCE_NETWORK])
LONS = np.array([s.lon for s in REFERENCE_NETWORK])


def _powers(tx_lat, tx_lon, p1_dbfs, exponent):
    frame = LocalFrame(LATS.mean(), LONS.mean())
    rx = frame.to_enu(LATS, LONS)[:, :2]
    tx = frame.to_enu(tx_lat, tx_lon)[:2]
    d_km = np.maximum(np.linalg.norm(rx - tx, axis=1) / 1000, 1.0)
    return p1_dbfs - 10 * exponent * np.log10(d_km)


@pytest.mark.parametrize(
    ("lat", "lon", "exponent"), [(45.0, 8.3, 3.0), (44.8, 7.6, 2.6), (45.3, 8.9, 3.7)]
)
def test_noiseless_powers_give_the_true_position(lat, lon, exponent):
    est = localize_rss(LATS, LONS, _powers(lat, lon, -10.0, exponent))
    frame = LocalFrame(lat, lon)
    e, n, _ = frame.to_enu(est.lat, est.lon)
    assert np.hypot(e, n) < 200.0
    assert est.exponent == pytest.approx(exponent, abs=0.01)
    assert est.covariance_en_m2.shape == (2, 2)
    assert np.linalg.eigvalsh(est.covariance_en_m2).min() > 0


def test_exponent_fixed_when_few_receivers_hear():
    s = _powers(45.0, 8.3, -10.0, 3.25)
    s[[1, 4, 6, 3]] = np.nan
    est = localize_rss(LATS, LONS, s)
    assert est.receivers_used == 3 and est.exponent == 3.25


def test_too_few_receivers_hear():
    s = np.full(7, np.nan)
    s[:2] = -30.0
    with pytest.raises(TooFewReceivers):
        localize_rss(LATS, LONS, s)


@pytest.mark.parametrize("snr_db", [20.0, 0.0, -6.0])
def test_power_reading_from_iq(snr_db):
    rng = np.random.default_rng(0)
    signal_dbfs, noise_dbfs = -50.0, -50.0 - snr_db
    x = 10 ** (signal_dbfs / 20) * nfm(10_000, 50_000.0, 3000.0, 2500.0, rng)
    x = x + complex_noise((1, 10_000), np.array([10 ** (noise_dbfs / 10)]), rng)[0]
    reading = read_power(x, 50_000.0)
    assert reading.detected
    assert reading.signal_dbfs == pytest.approx(signal_dbfs, abs=0.5)
    assert reading.noise_dbfs == pytest.approx(noise_dbfs, abs=0.5)


def test_noise_only_is_not_detected():
    rng = np.random.default_rng(1)
    x = complex_noise((1, 10_000), np.array([1e-6]), rng)[0]
    assert not read_power(x, 50_000.0).detected
