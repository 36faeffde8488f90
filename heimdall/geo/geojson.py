"""GeoJSON FeatureCollection of an estimate: a Point, its uncertainty-ellipse Polygon, the other
likelihood modes (``kind: "alternative"`` Points and ``"alternative_ellipse"`` Polygons), then
one Point per receiver of the job (``kind: "receiver"``, whether the estimate ``used`` it)."""

from __future__ import annotations

from typing import Any

from heimdall.geo.ellipse import EllipseAxes, ellipse_outline_en
from heimdall.geo.enu import LocalFrame

COORD_DECIMALS = 7  # ~1 cm: far below any localization error


def ellipse_ring(lat_deg: float, lon_deg: float, axes: EllipseAxes, n_vertices: int = 64):
    """Closed CCW ring of ``n_vertices + 1`` ``[lon, lat]`` pairs around the estimate."""
    outline = ellipse_outline_en(axes, n_vertices)
    lats, lons = LocalFrame(lat_deg, lon_deg).to_latlon(outline[:, 0], outline[:, 1])
    ring = [
        [round(float(lon), COORD_DECIMALS), round(float(lat), COORD_DECIMALS)]
        for lat, lon in zip(lats, lons, strict=True)
    ]
    ring.append(list(ring[0]))
    return ring


def estimate_feature_collection(
    lat_deg: float,
    lon_deg: float,
    axes: EllipseAxes,
    properties: dict[str, Any] | None = None,
    receivers: list[tuple[str, float, float, bool]] | None = None,
    alternatives: list[tuple[float, float, EllipseAxes, float]] | None = None,
) -> dict[str, Any]:
    """A FeatureCollection: the estimate (Point), the ellipse (Polygon), ``alternatives`` as
    ``(lat, lon, axes, relative_likelihood)`` Point + Polygon pairs, and ``receivers`` as
    ``(receiver_id, lat, lon, used)`` Points after them."""
    common = dict(properties or {})
    modes = [_mode(lat_deg, lon_deg, axes, common, "estimate", "uncertainty_ellipse")]
    for lat, lon, alt_axes, likelihood in alternatives or []:
        extra = {**common, "relative_likelihood": likelihood}
        modes.append(_mode(lat, lon, alt_axes, extra, "alternative", "alternative_ellipse"))
    stations = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Point",
                "coordinates": [round(lon, COORD_DECIMALS), round(lat, COORD_DECIMALS)],
            },
            "properties": {"kind": "receiver", "receiver_id": rid, "used": used},
        }
        for rid, lat, lon, used in receivers or []
    ]
    features = [feature for mode in modes for feature in mode]
    return {"type": "FeatureCollection", "features": [*features, *stations]}


def _mode(lat_deg, lon_deg, axes, properties, point_kind, ellipse_kind) -> list[dict[str, Any]]:
    """A position (Point) and its ellipse (Polygon)."""
    point = {
        "type": "Feature",
        "geometry": {
            "type": "Point",
            "coordinates": [round(lon_deg, COORD_DECIMALS), round(lat_deg, COORD_DECIMALS)],
        },
        "properties": {**properties, "kind": point_kind},
    }
    polygon = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ellipse_ring(lat_deg, lon_deg, axes)]},
        "properties": {
            **properties,
            "kind": ellipse_kind,
            "confidence": axes.confidence,
            "semi_major_m": axes.semi_major_m,
            "semi_minor_m": axes.semi_minor_m,
            "orientation_deg": axes.orientation_deg,
        },
    }
    return [point, polygon]
