"""Transmissions with real bandwidth, evaluated at any instant (TDoA simulation).

Each signal is a complex baseband function ``s(t)`` of absolute time in seconds whose phase is
known in closed form, so a receiver can sample it at its own true rate, late by its own time of
flight, without interpolation error: NFM voice (FM by a sum of audio tones under a syllabic
envelope), 4FSK at 4800 baud (DMR-like deviations ±648/±1944 Hz), AFSK 1200 baud (Bell 202
audio tones 1200/2200 Hz on FM) and CW (a keyed carrier, narrow: a wide ellipse is right).

Most real emissions carry a spectral line, whose phase is the carrier's (receiver LO phases
included), not a group delay (DESIGN §11): AM voice with full carrier (the airband), AM broadcast
(wider audio, 9 kHz channels), a time-signal station as DCF77 publishes it (carrier; each second
the amplitude drops to 15 % for 0.1 s or 0.2 s; from 0.2 s after the mark, 512 pseudo-random
chips of ±15.6° phase at 645.16 chips/s, the sequence of a 9-stage LFSR, inverted for a one bit),
and FM with a strong residual carrier (low deviation: J0(β) near 1).
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
        elif self.kind == "fm-carrier":
            phase = phase + _tone_fm_phase(t, p["freqs_hz"], p["amps"], p["phases"], p["dev_hz"])
        elif self.kind in ("am-voice", "am-broadcast"):
            envelope = 1.0 + p["depth"] * _audio(t, p["freqs_hz"], p["amps"], p["phases"], p)
        elif self.kind == "time-signal":
            envelope, pn_rad = _time_signal(t, p)
            phase = phase + pn_rad
        else:
            envelope = _keying(t, p["on"], p["element_s"], p["edge_s"])
        return (envelope * np.exp(1j * phase)).astype(np.complex128)


def make_signal(kind: SignalKind, duration_s: float, rng: np.random.Generator) -> Signal:
    """A random transmission of ``kind`` lasting ``duration_s`` (plus margin for delays)."""
    span_s = duration_s + 0.1
    offset_hz = float(rng.uniform(-3000.0, 3000.0))
    if kind in ("am-broadcast", "time-signal"):  # a 12 kHz LF/MF/HF receiver tuned near it
        offset_hz = float(rng.uniform(-500.0, 500.0))
    if kind in ("am-voice", "am-broadcast"):
        n, top_hz = (10, 2500.0) if kind == "am-voice" else (20, 4500.0)
        params = {
            "freqs_hz": rng.uniform(200.0 if kind == "am-voice" else 50.0, top_hz, n),
            "amps": rng.uniform(0.2, 1.0, n),
            "phases": rng.uniform(0, 2 * np.pi, n),
            "depth": float(rng.uniform(0.3, 0.9)),
            "syllable_hz": float(rng.uniform(2.0, 6.0)),
            "syllable_phase": float(rng.uniform(0, 2 * np.pi)),
        }
    elif kind == "time-signal":
        seconds = int(span_s) + 3
        params = {
            "second_phase_s": float(rng.uniform(0.0, 1.0)),  # where the second marks fall
            "bits": rng.integers(0, 2, seconds),
            "chips": _lfsr_chips(),
            "deviation_rad": np.deg2rad(15.6),
        }
    elif kind == "fm-carrier":  # β ≲ 0.5 on voice: the carrier keeps most of the power
        params = {**_fm_voice(rng), "dev_hz": float(rng.uniform(150.0, 500.0))}
    elif kind == "nfm":
        params = {**_fm_voice(rng), "dev_hz": float(rng.choice([2500.0, 5000.0]))}
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


def _fm_voice(rng: np.random.Generator, tones: int = 12) -> dict:
    """Voice as FM sees it: ``tones`` audio tones 300–3000 Hz, amplitudes and phases."""
    return {
        "freqs_hz": rng.uniform(300.0, 3000.0, tones),
        "amps": rng.uniform(0.2, 1.0, tones) / np.sqrt(tones / 2),
        "phases": rng.uniform(0, 2 * np.pi, tones),
    }


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


CHIP_RATE_HZ = 645.16  # DCF77 chips/s (1.55 ms each, ≈ 120 carrier cycles)
PN_START_S = 0.2  # after each second mark
MARK_LEVEL = 0.15
MARK_EDGE_S = 0.002  # the transmitting antenna's Q rounds the amplitude steps
CHIP_EDGE = 0.125  # share of a chip over which the phase moves to its next value


def _lfsr_chips(count: int = 512) -> np.ndarray:
    """±1 chips of the 9-stage LFSR x⁹ + x⁵ + 1 (DCF77's phase-modulation sequence)."""
    state, chips = 0x1FF, []
    for _ in range(count):
        out = state & 1
        chips.append(1.0 - 2.0 * out)
        feedback = (state ^ (state >> 4)) & 1
        state = (state >> 1) | (feedback << 8)
    return np.array(chips)


def _audio(t, freqs_hz, amps, phases, p) -> np.ndarray:
    """Voice-like audio in [−1, 1]: tones under a syllabic envelope."""
    tones = np.zeros_like(t)
    for f, a, ph in zip(freqs_hz, amps, phases, strict=True):
        tones += a * np.sin(2 * np.pi * f * t + ph)
    tones /= np.sum(amps)
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * p["syllable_hz"] * t + p["syllable_phase"])
    return tones * syllables


def _time_signal(t, p) -> tuple[np.ndarray, np.ndarray]:
    """(amplitude, phase in rad) of a DCF77-like emission at times ``t`` (s)."""
    since = t - p["second_phase_s"]
    second = np.floor(since).astype(np.int64)
    into = since - second  # seconds since the last mark
    bit = p["bits"][np.clip(second, 0, len(p["bits"]) - 1)]
    mark_s = np.where(bit == 1, 0.2, 0.1)
    down = np.clip(into / MARK_EDGE_S, 0.0, 1.0)  # falls at the mark
    up = np.clip((into - mark_s) / MARK_EDGE_S, 0.0, 1.0)  # rises after 0.1 or 0.2 s
    shape = lambda x: 0.5 - 0.5 * np.cos(np.pi * x)  # noqa: E731
    amplitude = 1.0 - (1.0 - MARK_LEVEL) * (shape(down) - shape(up))
    chips = p["chips"]
    position = (into - PN_START_S) * CHIP_RATE_HZ
    index = np.floor(position).astype(np.int64)
    inside = (index >= 0) & (index < len(chips))
    sign = np.where(bit == 1, -1.0, 1.0)
    now = chips[np.clip(index, 0, len(chips) - 1)]
    before = np.where(index > 0, chips[np.clip(index - 1, 0, len(chips) - 1)], 0.0)
    ramp = shape(np.clip((position - index) / CHIP_EDGE, 0.0, 1.0))
    value = np.where(inside, before + (now - before) * ramp, 0.0)
    return amplitude, sign * p["deviation_rad"] * value
