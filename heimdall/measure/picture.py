"""``heimdall picture``: one simulated TDoA fix drawn as a PNG (no plotting library needed).

Receivers (black squares), every pair's hyperbola of equal delay difference (one colour per
pair), the 95 % ellipse (red ring), the estimate (red cross) and the truth (green ring), over a
10 km grid. Pixels are rasterized with numpy; the PNG is written with zlib.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, propagation_m
from heimdall.geo.ellipse import chi2_2dof_scale, mahalanobis_sq
from heimdall.geo.enu import LocalFrame, frame_at_centroid
from heimdall.inference.localizer import Localizer
from heimdall.schemas.result import Result
from heimdall.sim.tdoa import TdoaScenario, TdoaScenarioGenerator, TdoaSimConfig

PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [148, 103, 189], [140, 86, 75],
     [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8,
)  # fmt: skip


def draw(scenario: TdoaScenario, result: Result, size_px: int = 800) -> np.ndarray:
    """An RGB image ``[size, size, 3]`` of the fix."""
    stations = scenario.stations
    frame = frame_at_centroid([s.lat for s in stations], [s.lon for s in stations])
    points = [(s.lat, s.lon) for s in stations] + [(scenario.true_lat, scenario.true_lon)]
    points.append((result.position.lat, result.position.lon))
    enu = np.array([frame.to_enu(lat, lon)[:2] for lat, lon in points])
    centre = (enu.min(0) + enu.max(0)) / 2
    half = max(np.ptp(enu, axis=0).max() / 2 * 1.25, 15_000.0)
    metres_per_px = 2 * half / size_px
    axis = (np.arange(size_px) + 0.5) * metres_per_px - half
    east, north = np.meshgrid(centre[0] + axis, centre[1] - axis)  # row 0 at the top: north
    lat, lon = frame.to_latlon(east, north)
    image = np.full((size_px, size_px, 3), 255, np.uint8)
    _grid(image, east, north, metres_per_px)
    _hyperbolae(image, scenario, result, lat, lon, metres_per_px)
    _ellipse(image, result, lat, lon)
    to_px = lambda e, n: (int((centre[1] + half - n) / metres_per_px),  # noqa: E731
                          int((e - centre[0] + half) / metres_per_px))  # fmt: skip
    for e, n in enu[: len(stations)]:
        _square(image, *to_px(e, n), 5, (0, 0, 0))
    _ring(image, *to_px(*enu[-2]), 9, (0, 160, 0))
    _cross(image, *to_px(*enu[-1]), 9, (220, 0, 0))
    return image


def _grid(image, east, north, metres_per_px, step_m=10_000.0) -> None:
    on = (np.abs(east - np.round(east / step_m) * step_m) < metres_per_px / 2) | (
        np.abs(north - np.round(north / step_m) * step_m) < metres_per_px / 2
    )
    image[on] = (225, 225, 225)


def _hyperbolae(image, scenario, result, lat, lon, metres_per_px) -> None:
    stations = {s.receiver_id: s for s in scenario.stations}
    frequency = scenario.job.receivers[0].center_frequency_hz
    for k, pair in enumerate(result.tdoa.pairs):
        a, b = stations[pair.a], stations[pair.b]
        tof_a = propagation_m(frequency, lat, lon, 10.0, a.lat, a.lon, a.alt_m)
        tof_b = propagation_m(frequency, lat, lon, 10.0, b.lat, b.lon, b.alt_m)
        residual_m = (tof_a - tof_b) - pair.delay_s * SPEED_OF_LIGHT_M_S
        per_px = np.hypot(*np.gradient(residual_m))  # lines one pixel wide, however steep
        image[np.abs(residual_m) < 0.8 * per_px] = PALETTE[k % len(PALETTE)]


def _ellipse(image, result, lat, lon) -> None:
    centre = LocalFrame(result.position.lat, result.position.lon)
    offset = centre.to_enu(lat, lon)[..., :2]
    d2 = mahalanobis_sq(offset, result.covariance_en_m2)
    k2 = chi2_2dof_scale(result.ellipse.confidence) ** 2
    level = np.sqrt(d2) - np.sqrt(k2)
    image[np.abs(level) < 1.2 * np.hypot(*np.gradient(level))] = (220, 0, 0)


def _square(image, row, col, half, colour) -> None:
    image[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1] = colour


def _cross(image, row, col, half, colour) -> None:
    for d in range(-half, half + 1):
        for r, c in ((row + d, col + d), (row + d, col - d)):
            if 0 <= r < image.shape[0] and 0 <= c < image.shape[1]:
                image[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = colour


def _ring(image, row, col, radius, colour) -> None:
    rr, cc = np.ogrid[: image.shape[0], : image.shape[1]]
    distance = np.hypot(rr - row, cc - col)
    image[np.abs(distance - radius) < 1.5] = colour


def write_png(path: Path, image: np.ndarray) -> None:
    """An 8-bit RGB PNG."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def picture(model_dir: Path, out: Path, seed: int, network: str, signal: str) -> Result:
    """Simulate one GNSS-timed job, localize it by time, draw it to ``out``."""
    config = TdoaSimConfig(network=network, clock_sigma_ns=(50.0, 50.0))
    scenario = TdoaScenarioGenerator(config, seed=seed).next(kind=signal)
    result = Localizer(model_dir).localize(scenario.job.model_copy(update={"method": "tdoa"}))
    if result.status != "ok":
        raise RuntimeError(f"the simulated job failed: {result.error}")
    write_png(out, draw(scenario, result))
    return result
