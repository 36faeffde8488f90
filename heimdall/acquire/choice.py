"""Choosing receivers: probe every candidate, record from the best ones around the target.

A probe reads the candidate's status page (free channels, GNSS, firmware, position) and then
records two seconds at the frequency to measure what it actually hears there: the SNR of the
strongest part of the spectrum over the noise floor (median of a Welch periodogram, Hann,
256-sample segments — a tone's SNR in one 47 Hz bin at 12 kHz). Time differences localize
best from receivers spread in bearing around the transmitter (the dilution of precision grows
as they bunch up), so the pick is greedy: the strongest usable receiver first, then each time
the one with the best SNR plus a bonus for the bearing gap it fills (bearings from ``near``,
the expected transmitter, or else from the candidates' centroid). SNR counts up to 20 dB: above
that a correlation peak is clean and a receiver in the same direction as one already chosen
adds little.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import welch

from heimdall.acquire.receiver import Receiver, Status, fetch_status, parse_receiver, version_text
from heimdall.acquire.session import ReceiverFailure, Session, Tuning, Window
from heimdall.ingest.kiwi import scan

PROBE_S = 2.0
SEGMENT = 256
GAP_BONUS_DB = 20.0  # a receiver that fills the widest possible gap is worth 20 dB of SNR
ENOUGH_SNR_DB = 20.0  # above this a delay is clean; more SNR no longer beats better geometry
MIN_SNR_DB = 6.0  # below this the candidate hears nothing to correlate


@dataclass
class Probe:
    receiver: Receiver
    status: Status | None = None
    snr_db: float | None = None
    position: tuple[float, float] | None = None
    problem: str | None = None  # why it cannot be used
    verdict: str = ""


def read_candidates(path: Path) -> list[Receiver]:
    """``HOST[:PORT][=NAME]`` per line; blank lines and ``#`` comments skipped."""
    receivers = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                receivers.append(parse_receiver(text))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    if not receivers:
        raise ValueError(f"{path}: no candidates")
    return receivers


def snr_db(iq: np.ndarray, rate_hz: float) -> float:
    """Peak over median of a two-sided Welch periodogram (Hann, 256 samples), dB."""
    _, power = welch(iq, rate_hz, window="hann", nperseg=SEGMENT, return_onesided=False)
    floor = float(np.median(power))
    return 10.0 * math.log10(max(float(power.max()), 1e-30) / max(floor, 1e-30))


async def probe(receiver: Receiver, frequency_khz: float, password: str = "") -> Probe:
    """Status page, then two seconds at the frequency."""
    result = Probe(receiver)
    try:
        result.status = await asyncio.to_thread(fetch_status, receiver, 3.0)
    except OSError as exc:
        result.problem = f"status page unreadable ({exc})"
        return result
    result.problem = _status_problem(result.status)
    if result.problem:
        return result
    with tempfile.TemporaryDirectory(prefix="heimdall-probe-") as scratch:
        path = Path(scratch) / "probe.wav"
        session = Session(receiver, Tuning(frequency_khz, password=password), path, result.status)
        try:
            await session.record(Window(PROBE_S, {receiver.name}))
        except ReceiverFailure as exc:
            result.problem = f"{exc.code}: {exc}"
            return result
        wav = scan(path)
        iq = np.frombuffer(wav.content[wav.blocks[0].data_offset :], "<i2")
        iq = iq[: len(iq) // 2 * 2].astype(np.float64).view(np.complex128)
        result.snr_db = snr_db(iq, session.progress.rate_hz or 12000.0)
        result.position = session.position or result.status.position
    if result.position is None:
        result.problem = "reports no position"
    elif result.snr_db < MIN_SNR_DB:
        result.problem = f"hears nothing at the frequency (SNR {result.snr_db:.1f} dB)"
    return result


def _status_problem(status: Status) -> str | None:
    if status.offline:
        return "offline"
    if status.free_channels == 0:
        return f"no free channel ({status.users}/{status.users_max} in use)"
    if status.gps_good == 0:
        return "no GNSS fix (gps_good=0): its time tags would not be GNSS time"
    return None


def bearing_deg(origin: tuple[float, float], to: tuple[float, float]) -> float:
    """Initial great-circle bearing from ``origin`` to ``to`` (degrees from north)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*origin, *to))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360.0


def pick(probes: list[Probe], count: int, near: tuple[float, float] | None) -> list[Probe]:
    """Greedy choice by SNR and bearing spread; sets every probe's ``verdict``."""
    usable = [p for p in probes if p.problem is None]
    for p in probes:
        if p.problem:
            p.verdict = f"passed over: {p.problem}"
    if not usable:
        return []
    _keep_one_generation(usable)
    usable = [p for p in usable if p.problem is None]
    center = near or _centroid([p.position for p in usable])
    bearing = {id(p): bearing_deg(center, p.position) for p in usable}
    chosen: list[Probe] = []
    while usable and len(chosen) < count:
        best = max(usable, key=lambda p: (_score(bearing, p, chosen, count), p.snr_db))
        gap = _gap_deg(bearing, best, chosen)
        best.verdict = f"chosen: SNR {best.snr_db:.1f} dB, bearing {bearing[id(best)]:.0f}°" + (
            f" (nearest chosen bearing {gap:.0f}° away)" if chosen else " (strongest)"
        )
        chosen.append(best)
        usable.remove(best)
    for p in usable:
        gap = _gap_deg(bearing, p, chosen)
        p.verdict = (
            f"passed over: SNR {p.snr_db:.1f} dB, bearing {bearing[id(p)]:.0f}°, "
            f"{gap:.0f}° from a chosen one (the {count} chosen score higher)"
        )
    return chosen


def _keep_one_generation(usable: list[Probe]) -> None:
    from heimdall.acquire.receiver import has_cic_filter

    versions = {id(p): p.status.version for p in usable if p.status and p.status.version}
    newer = [p for p in usable if id(p) in versions and has_cic_filter(versions[id(p)])]
    older = [p for p in usable if id(p) in versions and not has_cic_filter(versions[id(p)])]
    for p in older if len(newer) >= len(older) else newer:
        p.problem = (
            f"firmware {version_text(versions[id(p)])}: the other side of v1.653 (CIC filter) "
            "from most candidates; not mixed in one TDoA job"
        )
        p.verdict = f"passed over: {p.problem}"


def _gap_deg(bearing: dict, probe: Probe, chosen: list[Probe]) -> float:
    if not chosen:
        return 180.0
    b = bearing[id(probe)]
    return min(abs((b - bearing[id(c)] + 180.0) % 360.0 - 180.0) for c in chosen)


def _score(bearing: dict, probe: Probe, chosen: list[Probe], count: int) -> float:
    """SNR (counted up to :data:`ENOUGH_SNR_DB`) plus the bearing gap it fills."""
    snr = min(probe.snr_db, ENOUGH_SNR_DB)
    if not chosen:
        return snr
    ideal = 360.0 / max(count, 2)
    return snr + GAP_BONUS_DB * min(1.0, _gap_deg(bearing, probe, chosen) / ideal)


def _centroid(points: list[tuple[float, float]]) -> tuple[float, float]:
    vectors = np.array([
        [math.cos(math.radians(lat)) * math.cos(math.radians(lon)),
         math.cos(math.radians(lat)) * math.sin(math.radians(lon)), math.sin(math.radians(lat))]
        for lat, lon in points
    ]).mean(axis=0)  # fmt: skip
    lat = math.degrees(math.atan2(vectors[2], math.hypot(vectors[0], vectors[1])))
    return lat, math.degrees(math.atan2(vectors[1], vectors[0]))


async def choose(
    candidates: list[Receiver],
    frequency_khz: float,
    count: int,
    near: tuple[float, float] | None,
    password: str = "",
) -> tuple[list[Receiver], list[Probe]]:
    """Probe every candidate at once and pick ``count``: the chosen receivers, and every
    probe with its verdict (why it was chosen or passed over)."""
    probes = list(await asyncio.gather(*(probe(c, frequency_khz, password) for c in candidates)))
    chosen = pick(probes, count, near)
    return [p.receiver for p in chosen], probes
