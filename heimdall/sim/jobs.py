"""Simulated jobs with their truth, from either simulator, for the command line and the demo."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import get_args

from heimdall.schemas.job import IQJob
from heimdall.schemas.simulation import NetworkKind, TdoaNetwork

KINDS = ("rss", "tdoa")


def simulated_jobs(
    kind: str,
    network: str,
    count: int,
    seed: int | None,
    datatype: str = "cf32_le",
    signals: tuple[str, ...] | None = None,
    seconds: float | None = None,
) -> Iterator[tuple[IQJob, dict]]:
    """``count`` jobs and their truth (``lat``, ``lon``; ``signal`` for TDoA): ``kind`` "rss"
    is the network's training simulator (2 m band, power only), "tdoa" GNSS-timed receivers
    with time of flight, multipath and real-bandwidth signals (``signals`` to draw from, all by
    default; captures of ``seconds`` each, or the simulator's 10 000–50 000 samples).
    ``ValueError`` names a network the chosen simulator does not have, or TDoA options given
    to the RSS one (at the call, before any job is made)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    networks = get_args(TdoaNetwork if kind == "tdoa" else NetworkKind)
    if network not in networks:
        other = " (hf: with --kind tdoa)" if network == "hf" else ""
        raise ValueError(f"network {network!r}: the {kind} simulator has {networks}{other}")
    if kind == "tdoa":
        return _timed(network, count, seed, signals, seconds)
    if signals or seconds:
        raise ValueError("signal families and capture seconds are the tdoa simulator's")
    return _rss(network, count, seed, datatype)


def _timed(network, count, seed, signals, seconds) -> Iterator[tuple[IQJob, dict]]:
    from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

    config = TdoaSimConfig(network=network)
    if signals:
        config = replace(config, signals=tuple(signals))
    if seconds:
        rate_hz = config.hf_rate_hz if network == "hf" else config.vhf_rate_hz
        config = replace(config, num_samples=(round(seconds * rate_hz),) * 2)
    gen = TdoaScenarioGenerator(config, seed=seed)
    for _ in range(count):
        sc = gen.next()
        yield sc.job, {"lat": sc.true_lat, "lon": sc.true_lon, "signal": sc.signal_kind}


def _rss(network: str, count: int, seed: int | None, datatype: str) -> Iterator[tuple[IQJob, dict]]:
    from heimdall.sim.scenario import ScenarioGenerator, SimConfig

    gen = ScenarioGenerator(SimConfig(network=network), seed=seed)
    for _ in range(count):
        sc = gen.next()
        yield sc.to_job(datatype), {"lat": sc.true_lat, "lon": sc.true_lon}
