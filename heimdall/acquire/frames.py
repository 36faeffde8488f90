"""KiwiSDR websocket messages as bytes: the sound stream's frames and the server's ``MSG`` text.

Facts from KiwiSDR's own client (jks-prv/kiwiclient ``kiwi/client.py``), not its code. Every
binary message starts with a 3-byte tag (``SND``, ``MSG``, ``W/F``, ``EXT``). A ``SND`` frame is
``flags`` (u8), ``seq`` (u32 little-endian), the S-meter (u16 big-endian, dBm = 0.1·raw − 127),
then the samples. In a stereo mode (``iq``, also ``drm``, ``sas``, ``qam``) the samples follow a
10-byte GNSS header — ``last_gps_solution`` (u8: seconds since the last fix, 254/255 none),
a pad byte, ``gpssec`` (u32 LE, seconds of the GPS week), ``gpsnsec`` (u32 LE) — and are
interleaved I/Q int16, big-endian unless ``SND_FLAG_LITTLE_ENDIAN`` is set; stereo is never
compressed. A ``MSG`` message is one byte after the tag, then space-separated ``name=value``
items (values URL-quoted where they hold spaces or JSON).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from urllib.parse import quote, unquote

import numpy as np

SND_FLAG_ADC_OVERFLOW = 0x02
SND_FLAG_STEREO = 0x08
SND_FLAG_COMPRESSED = 0x10
SND_FLAG_LITTLE_ENDIAN = 0x80
NO_GNSS_FIX = 254  # last_gps_solution at or above this: the stamp is not from a fix
SMETER_OFFSET_DBM = 127.0
_HEAD = struct.Struct("<BI")  # flags, seq
_SMETER = struct.Struct(">H")
_GNSS = struct.Struct("<BBII")  # last_gps_solution, pad, gpssec, gpsnsec


class FrameError(ValueError):
    """A message that is not what the protocol says it is (named, with what was wrong)."""


@dataclass(frozen=True)
class GnssStamp:
    """When the frame's first sample was taken, by the receiver's GNSS clock."""

    last_gps_solution: int  # seconds since the last fix; ≥ NO_GNSS_FIX: none
    gpssec: int  # seconds into the GPS week
    gpsnsec: int

    @property
    def has_fix(self) -> bool:
        return self.last_gps_solution < NO_GNSS_FIX


@dataclass(frozen=True)
class SoundFrame:
    flags: int
    seq: int
    smeter_dbm: float
    gnss: GnssStamp | None  # stereo (IQ) frames only
    samples: np.ndarray  # int16, [N, 2] (I, Q) in stereo, [N] in mono

    @property
    def adc_overflow(self) -> bool:
        return bool(self.flags & SND_FLAG_ADC_OVERFLOW)


def decode_sound(body: bytes, stereo: bool) -> SoundFrame:
    """A ``SND`` frame's ``body`` (the bytes after the tag); ``stereo`` as the mode set."""
    if len(body) < _HEAD.size + _SMETER.size:
        raise FrameError(f"SND frame of {len(body)} bytes: shorter than its 7-byte header")
    flags, seq = _HEAD.unpack_from(body, 0)
    (raw,) = _SMETER.unpack_from(body, _HEAD.size)
    data = memoryview(body)[_HEAD.size + _SMETER.size :]
    if flags & SND_FLAG_COMPRESSED:  # a stereo (IQ) stream never is; mono only when asked
        raise FrameError("SND frame: ADPCM-compressed; IQ needs compression=0")
    gnss = None
    if stereo:
        if len(data) < _GNSS.size:
            raise FrameError(f"SND frame: {len(data)} bytes after the header, no GNSS header")
        solution, _, gpssec, gpsnsec = _GNSS.unpack_from(data, 0)
        gnss = GnssStamp(solution, gpssec, gpsnsec)
        data = data[_GNSS.size :]
    width = 4 if stereo else 2
    if len(data) % width:
        raise FrameError(f"SND frame: {len(data)} sample bytes, not a whole number of samples")
    dtype = "<i2" if flags & SND_FLAG_LITTLE_ENDIAN else ">i2"
    samples = np.frombuffer(data, dtype=dtype).astype(np.int16)
    return SoundFrame(
        flags, seq, 0.1 * raw - SMETER_OFFSET_DBM, gnss,
        samples.reshape(-1, 2) if stereo else samples,
    )  # fmt: skip


def encode_sound(
    seq: int, samples: np.ndarray, gnss: GnssStamp | None, smeter_dbm: float = -100.0
) -> bytes:
    """A whole ``SND`` message (tag included) as a KiwiSDR sends it: stereo with its GNSS
    header when ``gnss`` is given (``samples`` int16 ``[N, 2]``), else mono; big-endian."""
    stereo = gnss is not None
    flags = SND_FLAG_STEREO if stereo else 0
    raw = round((smeter_dbm + SMETER_OFFSET_DBM) * 10)
    parts = [b"SND", _HEAD.pack(flags, seq & 0xFFFFFFFF), _SMETER.pack(max(0, min(raw, 0xFFFF)))]
    if stereo:
        parts.append(_GNSS.pack(gnss.last_gps_solution, 0, gnss.gpssec, gnss.gpsnsec))
    parts.append(np.ascontiguousarray(samples, dtype=">i2").tobytes())
    return b"".join(parts)


def decode_msg(body: bytes) -> dict[str, str | None]:
    """A ``MSG`` message's ``body`` (after the tag): ``{name: value}``, values unquoted;
    a bare name (e.g. ``down``) maps to ``None``."""
    text = bytes(body[1:]).decode("utf-8", errors="replace")
    items: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        name, sep, value = item.partition("=")
        items[name] = unquote(value) if sep else None
    return items


def encode_msg(**items: object) -> bytes:
    """A whole ``MSG`` message: ``name=value`` items (values quoted when they need it)."""
    text = " ".join(
        name if value is None else f"{name}={quote(str(value), safe=',.:-_')}"
        for name, value in items.items()
    )
    return b"MSG " + text.encode("utf-8")


def split_tag(message: bytes) -> tuple[str, bytes]:
    """``(tag, body)`` of a binary websocket message."""
    if len(message) < 3:
        raise FrameError(f"a message of {len(message)} bytes has no 3-byte tag")
    return bytes(message[:3]).decode("ascii", errors="replace"), bytes(message[3:])
