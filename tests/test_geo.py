"""Ellipse, GeoJSON and local-frame geodesy against DESIGN §7 goldens and geographiclib."""

import math

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic

from heimdall.geo import (
    LocalFrame,
    chi2_2dof_scale,
    ellipse_from_covariance,
    estimate_feature_collection,
    frame_at_centroid,
    mahalanobis_sq,
    radii_of_curvature_m,
)

GOLDEN_C = [[160_000.0, 60_000.0], [60_000.0, 90_000.0]]


def test_chi2_scale_golden():
    assert chi2_2dof_scale(0.95) == pytest.approx(2.447747, abs=1e-6)
    # a 1σ ellipse (k = 1) holds 1 − e^(−1/2) = 39.35 %
    assert 1 - math.exp(-0.5) == pytest.approx(0.3935, abs=1e-4)


def test_golden_covariance():
    axes = ellipse_from_covariance(GOLDEN_C, 0.95)
    k = math.sqrt(-2.0 * math.log(0.05))
    assert (axes.semi_major_m / k) ** 2 == pytest.approx(194_462.22, abs=0.01)
    assert (axes.semi_minor_m / k) ** 2 == pytest.approx(55_537.78, abs=0.01)
    assert axes.semi_major_m == pytest.approx(1079.4042, abs=1e-3)
    assert axes.semi_minor_m == pytest.approx(576.8472, abs=1e-3)
    assert axes.orientation_deg == pytest.approx(60.1282, abs=1e-4)


@pytest.mark.parametrize(
    ("cov", "orientation"),
    [
        ([[4.0, 0.0], [0.0, 1.0]], 90.0),
        ([[1.0, 0.0], [0.0, 4.0]], 0.0),
        ([[2.0, 1.0], [1.0, 2.0]], 45.0),
        ([[2.0, -1.0], [-1.0, 2.0]], 135.0),
    ],
)
def test_orientation_conventions(cov, orientation):
    assert ellipse_from_covariance(cov).orientation_deg == pytest.approx(orientation, abs=1e-9)


def test_orientation_in_range_for_random_covariances():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a = rng.standard_normal((2, 2))
        o = ellipse_from_covariance(a @ a.T + 1e-9 * np.eye(2)).orientation_deg
        assert 0.0 <= o < 180.0


def _ring(lat=50.0152, lon=9.0112, cov=GOLDEN_C):
    fc = estimate_feature_collection(lat, lon, ellipse_from_covariance(cov, 0.95))
    return fc, fc["features"][1]["geometry"]["coordinates"][0]


def test_feature_collection_shape():
    fc, ring = _ring()
    assert fc["type"] == "FeatureCollection"
    point, polygon = fc["features"]
    assert point["geometry"] == {"type": "Point", "coordinates": [9.0112, 50.0152]}
    assert polygon["geometry"]["type"] == "Polygon"
    assert len(ring) == 65 and ring[0] == ring[-1]
    for lon, lat in ring:  # [lon, lat] order, 7 decimals
        assert round(lon, 7) == lon and round(lat, 7) == lat
        assert 8.99 < lon < 9.03 and 50.005 < lat < 50.025


def test_ring_is_counter_clockwise():
    _, ring = _ring()
    xy = np.array(ring[:-1])
    shoelace = 0.5 * np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
    assert shoelace > 0


def test_ring_geodesic_area_golden():
    _, ring = _ring()
    poly = Geodesic.WGS84.Polygon()
    for lon, lat in ring[:-1]:
        poly.AddPoint(lat, lon)
    _, _, area = poly.Compute(False, True)
    assert abs(area) == pytest.approx(1_952_973.6, rel=1e-3)


def test_ring_axes_are_geodesically_right():
    """Vertex 0 lies on the major axis at semi-major distance and azimuth (geographiclib)."""
    _, ring = _ring()
    axes = ellipse_from_covariance(GOLDEN_C, 0.95)
    inv = Geodesic.WGS84.Inverse(50.0152, 9.0112, ring[0][1], ring[0][0])
    assert inv["s12"] == pytest.approx(axes.semi_major_m, rel=1e-4)
    assert inv["azi1"] % 180 == pytest.approx(axes.orientation_deg, abs=0.01)


def test_monte_carlo_coverage():
    rng = np.random.default_rng(42)
    samples = rng.multivariate_normal([0.0, 0.0], GOLDEN_C, size=200_000)
    axes = ellipse_from_covariance(GOLDEN_C, 0.95)
    # inside the ellipse ⇔ within the semi-axes in the ellipse's own frame
    u = np.array(axes.major_unit_en)
    v = np.array([-u[1], u[0]])
    inside = (samples @ u / axes.semi_major_m) ** 2 + (samples @ v / axes.semi_minor_m) ** 2 <= 1
    assert inside.mean() == pytest.approx(0.95, abs=0.005)
    assert (
        mahalanobis_sq(samples, GOLDEN_C) <= chi2_2dof_scale(0.95) ** 2
    ).mean() == pytest.approx(inside.mean(), abs=1e-9)


def test_radii_of_curvature():
    m0, n0 = radii_of_curvature_m(0.0)
    assert n0 == pytest.approx(6_378_137.0)
    assert m0 == pytest.approx(6_335_439.327, abs=1e-2)
    m90, n90 = radii_of_curvature_m(90.0)
    assert m90 == pytest.approx(n90)


@pytest.mark.parametrize(("dlat", "dlon"), [(0.3, 0.0), (0.0, 0.4), (0.2, -0.3), (-0.45, 0.5)])
def test_enu_distance_matches_geodesic(dlat, dlon):
    frame = LocalFrame(45.0, 8.0)
    e, n, _ = frame.to_enu(45.0 + dlat, 8.0 + dlon)
    geo = Geodesic.WGS84.Inverse(45.0, 8.0, 45.0 + dlat, 8.0 + dlon)
    assert math.hypot(e, n) == pytest.approx(geo["s12"], rel=2e-3)
    assert math.degrees(math.atan2(e, n)) == pytest.approx(geo["azi1"], abs=0.3)


def test_enu_round_trip():
    frame = LocalFrame(44.9, 8.2, 100.0)
    lat, lon = np.array([44.4, 45.5, 44.9]), np.array([7.3, 9.1, 179.0 - 171.0])
    enu = frame.to_enu(lat, lon, [0.0, 500.0, 100.0])
    np.testing.assert_allclose(enu[:, 2], [-100.0, 400.0, 0.0])
    back = frame.to_latlon(enu[:, 0], enu[:, 1])
    np.testing.assert_allclose(back[0], lat, atol=1e-9)
    np.testing.assert_allclose(back[1], lon, atol=1e-9)


def test_centroid_frame_across_antimeridian():
    frame = frame_at_centroid([10.0, 10.0], [179.5, -179.5])
    assert abs(abs(frame.lon0_deg) - 180.0) < 1e-9
    e, _, _ = frame.to_enu(10.0, -179.5)
    assert 50_000 < e < 60_000
