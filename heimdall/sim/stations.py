"""Receiver stations: the 7-station Heimdall reference network and random networks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.geo.enu import LocalFrame


@dataclass(frozen=True)
class Station:
    receiver_id: str
    lat: float
    lon: float
    alt_m: float


# North-west Italy, 2 m band WebSDR/KiwiSDR sites; altitudes are approximate terrain heights.
REFERENCE_NETWORK: tuple[Station, ...] = (
    Station("giaveno", 45.02, 7.29, 500.0),
    Station("montanaro", 45.234, 7.857, 220.0),
    Station("torino", 45.044, 7.672, 240.0),
    Station("coazze", 45.03, 7.27, 750.0),
    Station("passo-del-giovi", 44.561, 8.956, 470.0),
    Station("genova", 44.395, 8.956, 100.0),
    Station("milano", 45.478, 9.123, 120.0),
)


def random_network(
    rng: np.random.Generator,
    num_receivers: int,
    extent_m: float,
    lat_range_deg: tuple[float, float] = (36.0, 60.0),
    lon_range_deg: tuple[float, float] = (-8.0, 25.0),
) -> tuple[Station, ...]:
    """``num_receivers`` stations uniform in an ``extent_m`` square somewhere in Europe."""
    frame = LocalFrame(float(rng.uniform(*lat_range_deg)), float(rng.uniform(*lon_range_deg)))
    east, north = rng.uniform(-extent_m / 2, extent_m / 2, size=(2, num_receivers))
    lats, lons = frame.to_latlon(east, north)
    alts = rng.uniform(0.0, 1000.0, size=num_receivers)
    return tuple(
        Station(f"rx{i:02d}", float(lat), float(lon), float(alt))
        for i, (lat, lon, alt) in enumerate(zip(lats, lons, alts, strict=True))
    )
