"""Simulated scenarios for the demo, tests, training and evaluation."""

from heimdall.sim.scenario import Scenario, ScenarioGenerator, SimConfig
from heimdall.sim.stations import REFERENCE_NETWORK, Station, random_network

__all__ = [
    "REFERENCE_NETWORK",
    "Scenario",
    "ScenarioGenerator",
    "SimConfig",
    "Station",
    "random_network",
]
