"""Log-distance path loss with log-normal shadowing, and the dBm → dBFS receiver chain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT_M_S = 299_792_458.0
REFERENCE_DISTANCE_M = 1000.0


def free_space_loss_db(distance_m: float, frequency_hz: float) -> float:
    """Free-space path loss 20·log10(4πd/λ) in dB."""
    return 20.0 * math.log10(4.0 * math.pi * distance_m * frequency_hz / SPEED_OF_LIGHT_M_S)


@dataclass(frozen=True)
class PathLoss:
    """PL(d) = PL(1 km, free space) + 10·n·log10(d / 1 km), d clamped at 1 km (dB)."""

    exponent: float
    frequency_hz: float

    def loss_db(self, distance_m: np.ndarray) -> np.ndarray:
        d = np.maximum(np.asarray(distance_m, dtype=np.float64), REFERENCE_DISTANCE_M)
        ref = free_space_loss_db(REFERENCE_DISTANCE_M, self.frequency_hz)
        return ref + 10.0 * self.exponent * np.log10(d / REFERENCE_DISTANCE_M)


def received_dbfs(
    eirp_dbm: float,
    distance_m: np.ndarray,
    path_loss: PathLoss,
    shadowing_db: np.ndarray,
    gain_db: float,
) -> np.ndarray:
    """Signal power at each receiver's ADC, dBFS: EIRP − PL(d) + shadowing + receiver gain."""
    return eirp_dbm - path_loss.loss_db(distance_m) + shadowing_db + gain_db
