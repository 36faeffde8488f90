"""Seeded TDoA scenarios: one transmission heard by GNSS-timed receivers, each sampling it at
its own true rate, late by its own time of flight, with the faults real receivers have.

Per receiver: time of flight (straight line at VHF, ground-wave geodesic below 30 MHz), a GNSS
time-stamp error (σ per scenario, 20–100 ns by default), a sample-rate error (±2 ppm; the job
reports the true rate, as a producer that fitted it would), a start a few ms apart from the
others, an LO offset and phase, one multipath echo (0.5–20 µs, −20 to −3 dB) and white noise at
the SNR the path-loss model of the RSS simulator gives (VHF) or a drawn one (HF). Below 30 MHz
(network ``hf``: 7.1 MHz, and 77.5 kHz for the time-signal station) each receiver also hears a
sky wave (50–500 µs after the ground wave; at HF −20 to −3 dB, comparable at night; at LF by
day −25 to −10 dB; its own phase, fading at up to ±0.5 Hz Doppler) and has a fixed bias of a
few µs (antenna, cable, filters). The signal (:mod:`heimdall.sim.signals`) is
evaluated in closed form at every receiver's sampling instants.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass

import numpy as np

from heimdall.dsp.iq import encode_iq
from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, propagation_m
from heimdall.geo.enu import LocalFrame
from heimdall.schemas.job import Clock, IQJob, ReceiverCapture, ns_to_datetime
from heimdall.schemas.simulation import SignalKind, TdoaNetwork
from heimdall.sim.propagation import PathLoss, received_dbfs
from heimdall.sim.signals import SIGNAL_KINDS, make_signal
from heimdall.sim.stations import REFERENCE_NETWORK, Station, random_network

EPOCH_NS = 1_795_000_000 * 10**9  # 2026-11-18: scenario times are offsets from here
LEAD_S = 0.05
LF_TOP_HZ = 300_000.0  # the signal starts before any receiver listens


@dataclass(frozen=True)
class TdoaSimConfig:
    network: TdoaNetwork = "reference"
    signals: tuple[SignalKind, ...] = SIGNAL_KINDS
    num_samples: tuple[int, int] = (10_000, 50_000)
    vhf_rate_hz: float = 50_000.0
    vhf_frequency_hz: float = 145_500_000.0
    hf_rate_hz: float = 12_001.0
    hf_frequency_hz: float = 7_100_000.0
    lf_frequency_hz: float = 77_500.0  # the time-signal station of network hf
    hf_snr_db: tuple[float, float] = (5.0, 25.0)
    hf_extent_m: tuple[float, float] = (500_000.0, 1_500_000.0)
    clock_sigma_ns: tuple[float, float] = (20.0, 100.0)
    rate_error_ppm: float = 2.0
    start_spread_s: float = 0.02
    lo_error_hz: float = 100.0  # VHF; HF receivers are GNSS-disciplined: ±1 Hz
    echo_delay_us: tuple[float, float] = (0.5, 20.0)
    echo_db: tuple[float, float] = (-20.0, -3.0)
    sky_delay_us: tuple[float, float] = (50.0, 500.0)  # below 30 MHz only
    sky_db: tuple[float, float] = (-20.0, -3.0)  # HF, day and night
    lf_sky_db: tuple[float, float] = (-25.0, -10.0)  # LF by day: the D layer absorbs
    sky_doppler_hz: float = 0.5
    receiver_bias_us: float = 3.0  # below 30 MHz: uniform ± this
    eirp_dbm: tuple[float, float] = (30.0, 50.0)
    exponent: tuple[float, float] = (2.5, 4.0)
    shadowing_db: float = 6.0
    gain_db: float = 45.0
    noise_floor_dbm: tuple[float, float] = (-118.0, -100.0)
    margin_m: float = 25_000.0
    random_receivers: tuple[int, int] = (4, 8)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TdoaScenario:
    """Ground truth and the job of one simulated transmission."""

    scenario_id: str
    signal_kind: str
    stations: tuple[Station, ...]
    true_lat: float
    true_lon: float
    snr_db: np.ndarray
    clock_error_ns: np.ndarray
    clock_sigma_ns: float
    rms_bandwidth_hz: float  # of the transmitted signal, for the Cramér–Rao bound
    num_samples: int
    job: IQJob

    def flight_s(self) -> dict[str, float]:
        """Each station's time of flight from the truth (s) by receiver id, on the path the
        simulator delays it by (a transmitter 10 m up): what a pair delay is scored against."""
        frequency_hz = self.job.receivers[0].center_frequency_hz
        return {
            s.receiver_id: float(propagation_m(frequency_hz, self.true_lat, self.true_lon, 10.0,
                                               s.lat, s.lon, s.alt_m)) / SPEED_OF_LIGHT_M_S
            for s in self.stations
        }  # fmt: skip


class TdoaScenarioGenerator:
    """Reproducible stream of :class:`TdoaScenario` from ``(config, seed)``."""

    def __init__(self, config: TdoaSimConfig | None = None, seed: int = 0) -> None:
        self.config = config or TdoaSimConfig()
        self.rng = np.random.default_rng(seed)

    def take(self, n: int) -> list[TdoaScenario]:
        return [self.next() for _ in range(n)]

    def next(self, kind: SignalKind | None = None) -> TdoaScenario:
        cfg, rng = self.config, self.rng
        hf = cfg.network == "hf"
        stations = self._stations()
        frame = LocalFrame(np.mean([s.lat for s in stations]), np.mean([s.lon for s in stations]))
        enu = frame.to_enu([s.lat for s in stations], [s.lon for s in stations])[:, :2]
        margin = cfg.margin_m * (4 if hf else 1)
        tx_en = rng.uniform(enu.min(0) - margin, enu.max(0) + margin)
        tx_lat, tx_lon = (float(v) for v in frame.to_latlon(*tx_en))
        kind = kind or cfg.signals[int(rng.integers(len(cfg.signals)))]
        frequency_hz = cfg.vhf_frequency_hz
        if hf:  # a time-signal station is an LF one (DCF77)
            frequency_hz = cfg.lf_frequency_hz if kind == "time-signal" else cfg.hf_frequency_hz
        rate_hz = cfg.hf_rate_hz if hf else cfg.vhf_rate_hz
        lats, lons, alts = (
            np.array([getattr(s, a) for s in stations]) for a in ("lat", "lon", "alt_m")
        )
        distance_m = propagation_m(frequency_hz, tx_lat, tx_lon, 10.0, lats, lons, alts)
        snr_db = self._snr_db(distance_m, frequency_hz, len(stations), hf)
        n = int(rng.integers(cfg.num_samples[0], cfg.num_samples[1] + 1))
        signal = make_signal(kind, n / rate_hz + cfg.start_spread_s + 0.01, rng)
        clock_sigma = float(rng.uniform(*cfg.clock_sigma_ns))
        clock_error = rng.normal(0.0, clock_sigma, len(stations))
        lo_error = cfg.lo_error_hz if not hf else 1.0
        epoch_ns = EPOCH_NS + int(rng.integers(0, 300 * 86_400)) * 10**9
        receivers = []
        for i, station in enumerate(stations):
            true_rate = rate_hz * (1 + rng.uniform(-1, 1) * cfg.rate_error_ppm * 1e-6)
            start_s = LEAD_S + float(rng.uniform(0, cfg.start_spread_s))
            t = start_s + np.arange(n) / true_rate
            arrival = t - distance_m[i] / SPEED_OF_LIGHT_M_S
            if hf:
                arrival = arrival - rng.uniform(-1, 1) * cfg.receiver_bias_us * 1e-6
            echo_s = rng.uniform(*cfg.echo_delay_us) * 1e-6
            echo = 10 ** (rng.uniform(*cfg.echo_db) / 20) * np.exp(1j * rng.uniform(0, 2 * np.pi))
            lo = np.exp(
                1j * (2 * np.pi * rng.uniform(-lo_error, lo_error) * t + rng.uniform(0, 6.3))
            )
            clean = signal(arrival) + echo * signal(arrival - echo_s)
            if hf:
                clean = self._sky_wave(signal, arrival, t, clean, frequency_hz)
            clean = clean * lo
            noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(0.5)
            amplitude = 10 ** (snr_db[i] / 20)
            noise_dbfs = float(rng.uniform(*cfg.noise_floor_dbm)) + cfg.gain_db
            iq = ((amplitude * clean + noise) * 10 ** (noise_dbfs / 20)).astype(np.complex64)
            stamp_ns = epoch_ns + round(start_s * 1e9 + clock_error[i])
            receivers.append(
                ReceiverCapture(
                    receiver_id=station.receiver_id,
                    lat=station.lat,
                    lon=station.lon,
                    alt_m=station.alt_m,
                    sample_rate_hz=true_rate,
                    center_frequency_hz=frequency_hz,
                    start_time=ns_to_datetime(stamp_ns),
                    datatype="cf32_le",
                    num_samples=n,
                    iq_b64=base64.b64encode(encode_iq(iq, "cf32_le")).decode("ascii"),
                    time_ns=stamp_ns,
                    clock=Clock(source="gnss", uncertainty_ns=round(clock_sigma, 1)),
                )
            )
        scenario_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        job = IQJob(job_id=scenario_id, receivers=receivers, meta={"simulated": "tdoa"})
        return TdoaScenario(
            scenario_id, kind, stations, tx_lat, tx_lon, snr_db, clock_error, clock_sigma,
            _rms_bandwidth_hz(signal(LEAD_S + np.arange(n) / rate_hz), rate_hz), n, job,
        )  # fmt: skip

    def _sky_wave(self, signal, arrival, t, clean, frequency_hz) -> np.ndarray:
        """``clean`` plus the ionosphere's copy: later, weaker, its own fading phase."""
        cfg, rng = self.config, self.rng
        delay_s = rng.uniform(*cfg.sky_delay_us) * 1e-6
        level_db = cfg.sky_db if frequency_hz >= LF_TOP_HZ else cfg.lf_sky_db
        gain = 10 ** (rng.uniform(*level_db) / 20)
        doppler_hz = rng.uniform(-1, 1) * cfg.sky_doppler_hz
        fading = np.exp(1j * (2 * np.pi * doppler_hz * t + rng.uniform(0, 2 * np.pi)))
        return clean + gain * fading * signal(arrival - delay_s)

    def _stations(self) -> tuple[Station, ...]:
        cfg, rng = self.config, self.rng
        if cfg.network == "reference":
            return REFERENCE_NETWORK
        count = int(rng.integers(cfg.random_receivers[0], cfg.random_receivers[1] + 1))
        if cfg.network == "hf":
            return random_network(rng, min(count, 7), float(rng.uniform(*cfg.hf_extent_m)))
        return random_network(rng, count, float(rng.uniform(60_000.0, 200_000.0)))

    def _snr_db(self, distance_m, frequency_hz, count, hf) -> np.ndarray:
        cfg, rng = self.config, self.rng
        if hf:
            return rng.uniform(*cfg.hf_snr_db, count)
        path = PathLoss(float(rng.uniform(*cfg.exponent)), frequency_hz)
        shadowing = rng.normal(0.0, cfg.shadowing_db, count)
        signal = received_dbfs(float(rng.uniform(*cfg.eirp_dbm)), distance_m, path, shadowing, 0.0)
        noise = rng.uniform(*cfg.noise_floor_dbm, count)
        return signal - noise


def _rms_bandwidth_hz(x: np.ndarray, rate_hz: float) -> float:
    """√(∫(f − f̄)²|X|² / ∫|X|²) of a waveform; NaN when nothing was sent (CW, key up for the
    whole capture: about 1 % of 0.2 s VHF windows)."""
    power = np.abs(np.fft.fft(x)) ** 2
    if not power.sum() > 0:
        return float("nan")
    freqs = np.fft.fftfreq(len(x), 1 / rate_hz)
    centre = (power * freqs).sum() / power.sum()
    return float(np.sqrt((power * (freqs - centre) ** 2).sum() / power.sum()))
