"""Shared fixtures: simulated jobs and the committed model."""

from __future__ import annotations

from pathlib import Path

import pytest

from heimdall.sim import ScenarioGenerator, SimConfig

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "v1"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return MODEL_DIR


@pytest.fixture(scope="session")
def localizer(model_dir):
    from heimdall.inference import Localizer

    return Localizer(model_dir)


@pytest.fixture
def scenario():
    return ScenarioGenerator(
        SimConfig(network="reference", missing_probability=0.0), seed=11
    ).next()


@pytest.fixture
def job(scenario):
    return scenario.to_job()
