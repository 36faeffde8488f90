"""Transmissions with real bandwidth, evaluated at any instant (TDoA simulation).

Each signal is a complex baseband function ``s(t)`` of absolute time in seconds whose phase is
known in closed form, so a receiver can sample it at its own true rate, late by its own time of
flight, without interpolation error: NFM voice (FM by a sum of audio tones under a syllabic
envelope), 4FSK at 4800 baud (DMR-like deviations ±648/±1944 Hz), AFSK 1200 baud (Bell 202
audio tones 1200/2200 Hz on FM) and CW (a keyed carrier, narrow: a wide ellipse is right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np

from heimdall.schemas.simulation import SignalKind

SIGNAL_KINDS: tuple[SignalKind, ...] = get_args(SignalKind)


@dataclass(frozen=True)
class Signal:
    """``s(t)`` on ``[0, duration_s)``; ``offset_hz`` from the tuned frequency."""

    kind: SignalKind
    offset_hz: float
    duration_s: float
    params: dict

    def __call__(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        phase = 2.0 * np.pi * self.offset_hz * t
        envelope = np.ones_like(t)
        p = self.params
        if self.kind == "nfm":
            phase = phase + _tone_fm_phase(t, p["freqs_hz"], p["amps"], p["phases"], p["dev_hz"])
        elif self.kind == "4fsk":
            phase = phase + _fsk_phase(t, p["symbols_hz"], p["baud"])
        elif self.kind == "afsk":
            phase = phase + _afsk_phase(t, p["tones_hz"], p["baud"], p["dev_hz"])
        else:
            envelope = _keying(t, p["on"], p["element_s"], p["edge_s"])
        return (envelope * np.exp(1j * phase)).astype(np.complex128)


def make_signal(kind: SignalKind, duration_s: float, rng: np.random.Generator) -> Signal:
    """A random transmission of ``kind`` lasting ``duration_s`` (plus margin for delays)."""
    span_s = duration_s + 0.1
    offset_hz = float(rng.uniform(-3000.0, 3000.0))
    if kind == "nfm":
        n = 12
        params = {
            "freqs_hz": rng.uniform(300.0, 3000.0, n),
            "amps": rng.uniform(0.2, 1.0, n) / np.sqrt(n / 2),
            "phases": rng.uniform(0, 2 * np.pi, n),
            "dev_hz": float(rng.choice([2500.0, 5000.0])),
        }
    elif kind == "4fsk":
        baud = 4800.0
        count = int(span_s * baud) + 2
        params = {"symbols_hz": rng.choice([-1944.0, -648.0, 648.0, 1944.0], count), "baud": baud}
    elif kind == "afsk":
        baud = 1200.0
        count = int(span_s * baud) + 2
        params = {"tones_hz": rng.choice([1200.0, 2200.0], count), "baud": baud, "dev_hz": 3000.0}
    else:
        element_s = 0.06  # 20 words per minute
        count = int(span_s / element_s) + 2
        on = rng.random(count) < 0.6
        params = {"on": on, "element_s": element_s, "edge_s": 0.005}
    return Signal(kind, offset_hz, duration_s, params)


def _tone_fm_phase(t, freqs_hz, amps, phases, dev_hz) -> np.ndarray:
    """2π·dev·∫Σ a sin(2πft+φ) dt, in closed form."""
    out = np.zeros_like(t)
    for f, a, p in zip(freqs_hz, amps, phases, strict=True):
        out -= a * np.cos(2 * np.pi * f * t + p) / f
    return dev_hz * out


def _fsk_phase(t, symbols_hz, baud) -> np.ndarray:
    """Continuous-phase FSK: phase is piecewise linear in t."""
    index = np.clip(np.floor(t * baud).astype(np.int64), 0, len(symbols_hz) - 1)
    starts = np.concatenate([[0.0], np.cumsum(2 * np.pi * symbols_hz / baud)])
    return starts[index] + 2 * np.pi * symbols_hz[index] * (t - index / baud)


def _afsk_phase(t, tones_hz, baud, dev_hz) -> np.ndarray:
    """FM by continuous-phase audio FSK: 2π·dev·∫sin(θa(t)) dt, per symbol in closed form."""
    period = 1.0 / baud
    audio_start = np.concatenate([[0.0], np.cumsum(2 * np.pi * tones_hz * period)])
    # ∫ over a whole symbol k of sin(θk + 2π f τ) dτ = (cos θk − cos θk+1) / (2π f)
    whole = (np.cos(audio_start[:-1]) - np.cos(audio_start[1:])) / (2 * np.pi * tones_hz)
    integral_start = np.concatenate([[0.0], np.cumsum(whole)])
    index = np.clip(np.floor(t * baud).astype(np.int64), 0, len(tones_hz) - 1)
    tau = t - index * period
    f = tones_hz[index]
    theta = audio_start[index]
    partial = (np.cos(theta) - np.cos(theta + 2 * np.pi * f * tau)) / (2 * np.pi * f)
    return 2 * np.pi * dev_hz * (integral_start[index] + partial)


def _keying(t, on, element_s, edge_s) -> np.ndarray:
    """On/off keyed envelope with raised-cosine edges of ``edge_s``."""
    index = np.clip(np.floor(t / element_s).astype(np.int64), 0, len(on) - 1)
    level = on[index].astype(np.float64)
    prev = on[np.maximum(index - 1, 0)].astype(np.float64)
    tau = t - index * element_s
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip(tau / edge_s, 0.0, 1.0))
    return prev + (level - prev) * ramp
