"""Classical received-signal-strength localizer: the peer the network must beat."""

from heimdall.baseline.power import PowerReading, read_power
from heimdall.baseline.rss import RssConfig, RssEstimate, localize_rss

__all__ = ["PowerReading", "RssConfig", "RssEstimate", "localize_rss", "read_power"]
