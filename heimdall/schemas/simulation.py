"""The simulator's vocabulary, as manifests record it (what a model was trained and evaluated
on) and as the command line offers it: receiver networks and signal families."""

from __future__ import annotations

from typing import Literal

NetworkKind = Literal["reference", "random", "mixed"]  # the RSS network's simulator
TdoaNetwork = Literal["reference", "random", "hf"]  # GNSS-timed receivers (time of flight)
# Signals with real bandwidth (TDoA); the last four carry a spectral line (a carrier)
SignalKind = Literal[
    "nfm", "4fsk", "afsk", "cw", "am-voice", "am-broadcast", "time-signal", "fm-carrier"
]
