"""WGS84 ↔ local East/North/Up on the tangent plane at a reference point.

Metres per radian come from the meridional radius M = a(1−e²)/(1−e²sin²φ)^1.5 and the
prime-vertical radius N = a/√(1−e²sin²φ) at the reference latitude φ (DESIGN §6–7). Over the
~200 km of a receiver network this plane differs from the ellipsoid by well under a kilometre,
far inside the localization error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WGS84_A_M = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)


def radii_of_curvature_m(lat_deg: float) -> tuple[float, float]:
    """``(M, N)``: meridional and prime-vertical radii of curvature at ``lat_deg``, metres."""
    s2 = math.sin(math.radians(lat_deg)) ** 2
    w = 1.0 - WGS84_E2 * s2
    return WGS84_A_M * (1.0 - WGS84_E2) / w**1.5, WGS84_A_M / math.sqrt(w)


@dataclass(frozen=True)
class LocalFrame:
    """A tangent plane at (``lat0_deg``, ``lon0_deg``, ``alt0_m``)."""

    lat0_deg: float
    lon0_deg: float
    alt0_m: float = 0.0

    @property
    def metres_per_rad(self) -> tuple[float, float]:
        """``(east, north)`` metres per radian of longitude and latitude."""
        m, n = radii_of_curvature_m(self.lat0_deg)
        return n * math.cos(math.radians(self.lat0_deg)), m

    def to_enu(self, lat_deg, lon_deg, alt_m=None) -> np.ndarray:
        """East, north, up in metres; array inputs give ``[..., 3]``."""
        east_m, north_m = self.metres_per_rad
        lat = np.asarray(lat_deg, dtype=np.float64)
        lon = np.asarray(lon_deg, dtype=np.float64)
        alt = np.zeros_like(lat) if alt_m is None else np.asarray(alt_m, dtype=np.float64)
        dlon = (lon - self.lon0_deg + 180.0) % 360.0 - 180.0
        return np.stack(
            [
                np.radians(dlon) * east_m,
                np.radians(lat - self.lat0_deg) * north_m,
                alt - self.alt0_m,
            ],
            axis=-1,
        )

    def to_latlon(self, east_m, north_m) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`to_enu` on the plane: ``(lat_deg, lon_deg)``."""
        east_per_rad, north_per_rad = self.metres_per_rad
        lat = self.lat0_deg + np.degrees(np.asarray(north_m, dtype=np.float64) / north_per_rad)
        lon = self.lon0_deg + np.degrees(np.asarray(east_m, dtype=np.float64) / east_per_rad)
        return lat, (lon + 180.0) % 360.0 - 180.0


def frame_at_centroid(lats_deg, lons_deg, alts_m=None) -> LocalFrame:
    """The reference frame of a job: mean lat/lon (and altitude) of the present receivers."""
    lats = np.asarray(lats_deg, dtype=np.float64)
    lons = np.asarray(lons_deg, dtype=np.float64)
    # Average longitudes as unit vectors so a network across the antimeridian stays intact.
    lon0 = math.degrees(
        math.atan2(np.sin(np.radians(lons)).mean(), np.cos(np.radians(lons)).mean())
    )
    alt0 = 0.0 if alts_m is None else float(np.mean(alts_m))
    return LocalFrame(float(lats.mean()), lon0, alt0)
