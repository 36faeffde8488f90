"""Geodesy on a local tangent plane, confidence ellipses and GeoJSON (no services)."""

from heimdall.geo.ellipse import (
    EllipseAxes,
    chi2_2dof_scale,
    ellipse_from_covariance,
    ellipse_outline_en,
    mahalanobis_sq,
)
from heimdall.geo.enu import LocalFrame, frame_at_centroid, radii_of_curvature_m
from heimdall.geo.geojson import ellipse_ring, estimate_feature_collection

__all__ = [
    "EllipseAxes",
    "LocalFrame",
    "chi2_2dof_scale",
    "ellipse_from_covariance",
    "ellipse_outline_en",
    "ellipse_ring",
    "estimate_feature_collection",
    "frame_at_centroid",
    "mahalanobis_sq",
    "radii_of_curvature_m",
]
