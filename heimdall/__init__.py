"""Heimdall: localize radio transmitters from multi-receiver SDR IQ recordings."""

__version__ = "0.1.0"
