"""A KiwiSDR receiver: where it is on the network, and what its status page says.

The status page (``GET /status``, plain text, one ``name=value`` per line) is what the public
KiwiSDR list and the TDoA service read to choose receivers: ``users``/``users_max`` (free
channels), ``gps=(lat, lon)``, ``gps_good`` (satellites in the solution), ``fixes``,
``sw_version`` (``KiwiSDR_v1.xxx``), ``offline``, ``snr``, ``antenna``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass

DEFAULT_PORT = 8073
CIC_FILTER_VERSION = (1, 653)  # v1.653 added the CIC compensation filter (change log v1.654)
NON_KIWI_APP_LIMIT_VERSION = (1, 834)  # owners may reject non-Kiwi apps early from here on
_ADDRESS = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:=\s]+)(?::(?P<port>[0-9]+))?(?:=(?P<name>.+))?$"
)
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_-]+")  # a file name and an Octave field (gnss_pos)
OWN_NAME_CHARS = 24  # a receiver's own name longer than this is not used for its files
_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)")
_PAIR = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)")


@dataclass(frozen=True)
class Receiver:
    """``HOST[:PORT][=NAME]`` as given on the command line; ``name`` names its files
    (``named``: given, not made up from the address)."""

    host: str
    port: int = DEFAULT_PORT
    name: str = ""
    named: bool = True

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


def parse_receiver(text: str) -> Receiver:
    """``HOST[:PORT][=NAME]`` → :class:`Receiver`; ``ValueError`` naming what is wrong. The
    name defaults to ``host_port`` (until the receiver's own name replaces it, see
    :func:`station_name`) and is made safe for a file name and a ``gnss_pos`` field: letters,
    digits, ``_`` and ``-``."""
    match = _ADDRESS.match(text.strip())
    if match is None:
        raise ValueError(f"receiver {text!r}: expected HOST[:PORT][=NAME]")
    port = int(match["port"] or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ValueError(f"receiver {text!r}: port {port} out of range")
    host = match["host"].strip("[]")
    name = safe_name(match["name"] or f"{host}_{port}")
    if not name:
        raise ValueError(f"receiver {text!r}: the name has no letter or digit")
    return Receiver(host, port, name, named=match["name"] is not None)


def safe_name(text: str) -> str:
    return _NAME_SAFE.sub("_", text).strip("_")


def station_name(receiver: Receiver, own_name: str | None) -> str:
    """The name for a receiver's files: the one given, else its own (status page ``name``)
    when short enough to be a file name, else ``host_port``."""
    if receiver.named or not own_name:
        return receiver.name
    name = safe_name(own_name)
    return name if 0 < len(name) <= OWN_NAME_CHARS else receiver.name


def parse_version(text: str | None) -> tuple[int, int] | None:
    """``KiwiSDR_v1.834`` / ``1.834`` → ``(1, 834)``; None when there is none."""
    match = _VERSION.search(text or "")
    return (int(match[1]), int(match[2])) if match else None


def parse_position(text: str | None) -> tuple[float, float] | None:
    """``(lat, lon[, …])`` (status page ``gps=``, config ``rx_gps``) → ``(lat, lon)``; None
    when missing, unreadable or out of range."""
    match = _PAIR.search(text or "")
    if match is None:
        return None
    try:
        lat, lon = float(match[1]), float(match[2])
    except ValueError:
        return None
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


@dataclass(frozen=True)
class Status:
    """What a receiver's status page says (None: not on the page)."""

    fields: dict[str, str]

    def _int(self, key: str) -> int | None:
        try:
            return int(self.fields[key])
        except (KeyError, ValueError):
            return None

    @property
    def name(self) -> str | None:
        return self.fields.get("name")

    @property
    def offline(self) -> bool:
        return self.fields.get("offline", "no").lower() == "yes"

    @property
    def users(self) -> int | None:
        return self._int("users")

    @property
    def users_max(self) -> int | None:
        return self._int("users_max")

    @property
    def free_channels(self) -> int | None:
        users, users_max = self.users, self.users_max
        return None if users is None or users_max is None else max(users_max - users, 0)

    @property
    def gps_good(self) -> int | None:
        """Satellites in the receiver's GNSS solution (0: no fix)."""
        return self._int("gps_good")

    @property
    def position(self) -> tuple[float, float] | None:
        return parse_position(self.fields.get("gps"))

    @property
    def version(self) -> tuple[int, int] | None:
        return parse_version(self.fields.get("sw_version"))

    @property
    def snr_db(self) -> float | None:
        """The page's ``snr=ALL,HF`` (dB): the HF figure."""
        parts = self.fields.get("snr", "").split(",")
        try:
            return float(parts[-1])
        except ValueError:
            return None


def parse_status(text: str) -> Status:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            fields[name.strip()] = value.strip()
    return Status(fields)


def fetch_status(receiver: Receiver, timeout_s: float = 5.0) -> Status:
    """The receiver's status page; ``OSError`` when it cannot be read."""
    url = f"http://{receiver.host}:{receiver.port}/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse_status(response.read(65536).decode("utf-8", errors="replace"))
    except (urllib.error.URLError, ValueError) as exc:
        raise OSError(f"{url}: {exc}") from exc


def version_text(version: tuple[int, int] | None) -> str:
    return "?" if version is None else f"v{version[0]}.{version[1]}"


def has_cic_filter(version: tuple[int, int]) -> bool:
    """Firmware with the CIC compensation filter (v1.653 on): its IQ is filtered differently,
    so it is never mixed in one TDoA job with a receiver without it (KiwiSDR change log
    v1.654)."""
    return version >= CIC_FILTER_VERSION
