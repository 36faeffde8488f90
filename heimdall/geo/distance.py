"""Propagation distances between WGS84 points: straight lines (VHF and up) and ground-wave
geodesics (LF/MF/HF), vectorized for likelihood grids.

Straight lines go through ECEF. Geodesics use the Andoyer–Lambert correction of the great
circle (≤ 15 m up to ~1700 km against ``geographiclib``, checked in the tests), far below
the timing error of any real receiver.
"""

from __future__ import annotations

import numpy as np

from heimdall.geo.enu import WGS84_A_M, WGS84_E2, WGS84_F

SPEED_OF_LIGHT_M_S = 299_792_458.0
GROUND_WAVE_BELOW_HZ = 30e6


def to_ecef(lat_deg, lon_deg, alt_m=0.0) -> np.ndarray:
    """Earth-centred, Earth-fixed metres ``[..., 3]``."""
    lat, lon, alt = np.broadcast_arrays(
        np.radians(lat_deg), np.radians(lon_deg), np.asarray(alt_m, dtype=np.float64)
    )
    n = WGS84_A_M / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
    return np.stack(
        [
            (n + alt) * np.cos(lat) * np.cos(lon),
            (n + alt) * np.cos(lat) * np.sin(lon),
            (n * (1.0 - WGS84_E2) + alt) * np.sin(lat),
        ],
        axis=-1,
    )


def geodesic_m(lat1_deg, lon1_deg, lat2_deg, lon2_deg) -> np.ndarray:
    """Ellipsoidal surface distance (Andoyer–Lambert), metres; broadcasts."""
    f = WGS84_F
    b1 = np.arctan((1 - f) * np.tan(np.radians(lat1_deg)))  # reduced latitudes
    b2 = np.arctan((1 - f) * np.tan(np.radians(lat2_deg)))
    dlon = np.radians(np.asarray(lon2_deg, dtype=np.float64) - lon1_deg)
    cos_sigma = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(dlon)
    sigma = np.arccos(np.clip(cos_sigma, -1.0, 1.0))
    p, q = (b1 + b2) / 2, (b2 - b1) / 2
    sin_sigma = np.sin(sigma)
    safe = np.where(sin_sigma < 1e-12, 1.0, sin_sigma)
    x = (
        (sigma - sin_sigma)
        * (np.sin(p) * np.cos(q)) ** 2
        / np.where(np.cos(sigma / 2) < 1e-12, 1.0, np.cos(sigma / 2) ** 2)
    )
    y = (
        (sigma + sin_sigma)
        * (np.cos(p) * np.sin(q)) ** 2
        / np.where(np.sin(sigma / 2) < 1e-12, 1.0, np.sin(sigma / 2) ** 2)
    )
    correction = np.where(sin_sigma < 1e-12, 0.0, f / 2 * (x + y) / safe * sin_sigma)
    return WGS84_A_M * (sigma - correction)


def propagation_m(
    frequency_hz: float, tx_lat, tx_lon, tx_alt, rx_lat, rx_lon, rx_alt
) -> np.ndarray:
    """Path length from transmitter(s) to receiver(s): ground wave below 30 MHz, else a
    straight line. Broadcasts like numpy (e.g. ``tx[..., None]`` against receivers)."""
    if frequency_hz < GROUND_WAVE_BELOW_HZ:
        return geodesic_m(tx_lat, tx_lon, rx_lat, rx_lon)
    return np.linalg.norm(
        to_ecef(tx_lat, tx_lon, tx_alt) - to_ecef(rx_lat, rx_lon, rx_alt), axis=-1
    )
