"""Seeded scenarios: one transmitter heard by a receiver network, as the jobs producers send.

Each scenario draws a transmitter position inside and around the network's bounding box, an
unknown EIRP, a per-scenario path-loss exponent, log-normal shadowing per receiver, a noise
floor per receiver, and a narrow-band signal (NFM or CW, with a carrier offset), then
synthesizes complex IQ at every receiver. Some receivers are occasionally missing.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from heimdall.dsp.iq import encode_iq
from heimdall.geo.enu import LocalFrame, frame_at_centroid
from heimdall.schemas.job import IQJob, ReceiverCapture
from heimdall.schemas.simulation import NetworkKind
from heimdall.sim import waveform
from heimdall.sim.propagation import PathLoss, received_dbfs
from heimdall.sim.stations import REFERENCE_NETWORK, Station, random_network


@dataclass(frozen=True)
class SimConfig:
    """The scenario distribution; recorded in each model manifest it trained."""

    network: NetworkKind = "mixed"
    reference_fraction: float = 0.7  # of "mixed" scenarios on the reference network
    sample_rate_hz: float = 50_000.0
    num_samples: int = 10_000
    center_frequency_hz: float = 145_500_000.0
    band_hz: tuple[float, float] = (144e6, 146e6)  # 2 m band: where this path loss holds
    eirp_dbm: tuple[float, float] = (30.0, 50.0)  # 1 W … 100 W, unknown to the localizer
    exponent: tuple[float, float] = (2.5, 4.0)  # path-loss exponent, per scenario
    shadowing_db: float = 6.0  # σ of log-normal shadowing, per receiver
    gain_db: float = 45.0  # receiver chain: dBm at the antenna → dBFS at the ADC
    noise_floor_dbm: tuple[float, float] = (-118.0, -100.0)  # per receiver, in 50 kHz
    margin_m: float = 25_000.0  # transmitters reach this far outside the receivers' box
    missing_probability: float = 0.1  # each receiver, as long as 3 remain
    cw_probability: float = 0.3
    offset_hz: tuple[float, float] = (-12_000.0, 12_000.0)
    lo_error_hz: float = 100.0  # per-receiver tuning error, uniform ±
    random_receivers: tuple[int, int] = (4, 12)
    random_extent_m: tuple[float, float] = (60_000.0, 200_000.0)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scenario:
    """A simulated job's ground truth and IQ, ``iq`` shaped ``[R, num_samples]`` complex64."""

    scenario_id: str
    network: str
    stations: tuple[Station, ...]
    true_lat: float
    true_lon: float
    eirp_dbm: float
    exponent: float
    signal_dbfs: np.ndarray
    noise_dbfs: np.ndarray
    iq: np.ndarray
    sample_rate_hz: float
    center_frequency_hz: float
    start_time: datetime

    def true_enu_m(self, frame: LocalFrame) -> np.ndarray:
        return frame.to_enu(self.true_lat, self.true_lon)[:2]

    def frame(self) -> LocalFrame:
        """The job's reference frame: centroid of the receivers present."""
        return frame_at_centroid(
            [s.lat for s in self.stations],
            [s.lon for s in self.stations],
            [s.alt_m for s in self.stations],
        )

    def to_job(self, datatype: str = "cf32_le", **job_fields) -> IQJob:
        """The ``heimdall.iqjob/1`` a producer would send, IQ inline as ``iq_b64``."""
        receivers = [
            ReceiverCapture(
                receiver_id=s.receiver_id,
                lat=s.lat,
                lon=s.lon,
                alt_m=s.alt_m,
                sample_rate_hz=self.sample_rate_hz,
                center_frequency_hz=self.center_frequency_hz,
                start_time=self.start_time,
                datatype=datatype,
                num_samples=self.iq.shape[1],
                iq_b64=base64.b64encode(encode_iq(x, datatype)).decode("ascii"),
            )
            for s, x in zip(self.stations, self.iq, strict=True)
        ]
        fields = {"job_id": self.scenario_id, "meta": {"simulated": True}} | job_fields
        return IQJob(receivers=receivers, **fields)


class ScenarioGenerator:
    """Reproducible stream of :class:`Scenario` from ``(config, seed)``."""

    def __init__(self, config: SimConfig | None = None, seed: int = 0) -> None:
        self.config = config or SimConfig()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._epoch = datetime(2026, 1, 1, tzinfo=UTC)

    def __iter__(self) -> Iterator[Scenario]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[Scenario]:
        return [self.next() for _ in range(n)]

    def next(self) -> Scenario:
        cfg, rng = self.config, self.rng
        network, stations = self._network()
        stations = self._drop_missing(stations)
        box = LocalFrame(np.mean([s.lat for s in stations]), np.mean([s.lon for s in stations]))
        rx_enu = box.to_enu([s.lat for s in stations], [s.lon for s in stations])[:, :2]
        lo = rx_enu.min(0) - cfg.margin_m
        hi = rx_enu.max(0) + cfg.margin_m
        tx_en = rng.uniform(lo, hi)
        true_lat, true_lon = box.to_latlon(tx_en[0], tx_en[1])

        eirp = float(rng.uniform(*cfg.eirp_dbm))
        exponent = float(rng.uniform(*cfg.exponent))
        distance_m = np.linalg.norm(rx_enu - tx_en, axis=1)
        shadowing = rng.normal(0.0, cfg.shadowing_db, len(stations))
        path = PathLoss(exponent, cfg.center_frequency_hz)
        signal_dbfs = received_dbfs(eirp, distance_m, path, shadowing, cfg.gain_db)
        noise_dbfs = rng.uniform(*cfg.noise_floor_dbm, len(stations)) + cfg.gain_db
        iq = self._synthesize(signal_dbfs, noise_dbfs)
        return Scenario(
            scenario_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            network=network,
            stations=stations,
            true_lat=float(true_lat),
            true_lon=float(true_lon),
            eirp_dbm=eirp,
            exponent=exponent,
            signal_dbfs=signal_dbfs,
            noise_dbfs=noise_dbfs,
            iq=iq,
            sample_rate_hz=cfg.sample_rate_hz,
            center_frequency_hz=cfg.center_frequency_hz,
            start_time=self._epoch + timedelta(seconds=float(rng.uniform(0, 86400 * 300))),
        )

    def _network(self) -> tuple[str, tuple[Station, ...]]:
        cfg, rng = self.config, self.rng
        kind = cfg.network
        if kind == "mixed":
            kind = "reference" if rng.random() < cfg.reference_fraction else "random"
        if kind == "reference":
            return kind, REFERENCE_NETWORK
        n = int(rng.integers(cfg.random_receivers[0], cfg.random_receivers[1] + 1))
        return kind, random_network(rng, n, float(rng.uniform(*cfg.random_extent_m)))

    def _drop_missing(self, stations: tuple[Station, ...]) -> tuple[Station, ...]:
        keep = self.rng.random(len(stations)) >= self.config.missing_probability
        if keep.sum() < 3:
            return stations
        return tuple(s for s, k in zip(stations, keep, strict=True) if k)

    def _synthesize(self, signal_dbfs: np.ndarray, noise_dbfs: np.ndarray) -> np.ndarray:
        cfg, rng = self.config, self.rng
        n, fs = cfg.num_samples, cfg.sample_rate_hz
        offset = float(rng.uniform(*cfg.offset_hz))
        if rng.random() < cfg.cw_probability:
            base = waveform.cw(n, fs, offset)
        else:
            base = waveform.nfm(n, fs, offset, float(rng.choice([2500.0, 5000.0])), rng)
        r = len(signal_dbfs)
        t_s = np.arange(n) / fs
        lo_error = rng.uniform(-cfg.lo_error_hz, cfg.lo_error_hz, r)
        phase0 = rng.uniform(0, 2 * np.pi, r)
        rotation = np.exp(1j * (2 * np.pi * lo_error[:, None] * t_s + phase0[:, None]))
        amplitude = np.sqrt(10.0 ** (signal_dbfs / 10.0))[:, None]
        clean = (amplitude * rotation * base).astype(np.complex64)
        return clean + waveform.complex_noise((r, n), 10.0 ** (noise_dbfs / 10.0), rng)
