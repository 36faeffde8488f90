"""Covariance (east/north, m²) → confidence ellipse, exactly as DESIGN §7."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def chi2_2dof_scale(confidence: float) -> float:
    """k = √(−2·ln(1 − p)) = √χ²₂(p): the Mahalanobis radius holding probability ``p``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return math.sqrt(-2.0 * math.log1p(-confidence))


@dataclass(frozen=True)
class EllipseAxes:
    """Semi-axes in metres and the major-axis azimuth in degrees clockwise from north, [0, 180)."""

    confidence: float
    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float

    @property
    def major_unit_en(self) -> tuple[float, float]:
        """Unit vector (east, north) along the major axis."""
        az = math.radians(self.orientation_deg)
        return math.sin(az), math.cos(az)


def ellipse_from_covariance(cov_en_m2, confidence: float = 0.95) -> EllipseAxes:
    """Ellipse of ``confidence`` for a 2×2 symmetric covariance [[ee, en], [ne, nn]] in m²."""
    c = np.asarray(cov_en_m2, dtype=np.float64)
    if c.shape != (2, 2) or not np.isfinite(c).all():
        raise ValueError("covariance must be a finite 2×2 matrix")
    c = 0.5 * (c + c.T)
    eigenvalues, eigenvectors = np.linalg.eigh(c)  # ascending
    lam_minor, lam_major = (max(float(v), 0.0) for v in eigenvalues)
    v_e, v_n = eigenvectors[:, 1]
    orientation = math.degrees(math.atan2(v_e, v_n)) % 180.0
    if orientation >= 180.0:  # -tiny % 180 rounds to 180.0
        orientation = 0.0
    k = chi2_2dof_scale(confidence)
    return EllipseAxes(
        confidence=confidence,
        semi_major_m=k * math.sqrt(lam_major),
        semi_minor_m=k * math.sqrt(lam_minor),
        orientation_deg=orientation,
    )


def ellipse_outline_en(axes: EllipseAxes, n_vertices: int = 64) -> np.ndarray:
    """``[n_vertices, 2]`` east/north offsets in metres, counter-clockwise from the major axis."""
    t = 2.0 * np.pi * np.arange(n_vertices) / n_vertices
    major = np.array(axes.major_unit_en)
    minor = np.array([-major[1], major[0]])  # major rotated +90°: CCW in the east/north plane
    return np.outer(axes.semi_major_m * np.cos(t), major) + np.outer(
        axes.semi_minor_m * np.sin(t), minor
    )


def mahalanobis_sq(offset_en_m, cov_en_m2) -> np.ndarray:
    """Squared Mahalanobis distance of offsets ``[..., 2]`` under ``cov_en_m2``."""
    d = np.asarray(offset_en_m, dtype=np.float64)
    inv = np.linalg.inv(np.asarray(cov_en_m2, dtype=np.float64))
    return np.einsum("...i,ij,...j->...", d, inv, d)
