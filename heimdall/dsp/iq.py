"""IQ bytes ↔ complex64 for the SigMF datatypes ``cf32_le``, ``ci16_le`` and ``cu8``.

All three are interleaved I then Q. ``ci16_le`` is scaled by 2⁻¹⁵ and ``cu8`` maps to
(x − 128)/128, as the ``sigmf`` package reads them, so full scale is amplitude 1 (0 dBFS).
"""

from __future__ import annotations

import numpy as np

from heimdall.schemas.errors import InvalidPayload
from heimdall.schemas.job import BYTES_PER_SAMPLE

# Full scale is 1.0; cf32 beyond ±1e6 (120 dB over full scale) is a scaling error upstream,
# and squared it would overflow float32 power sums into inf.
MAX_CF32_MAGNITUDE = 1e6

_COMPONENT_DTYPE = {"cf32_le": np.dtype("<f4"), "ci16_le": np.dtype("<i2"), "cu8": np.dtype("u1")}


def decode_iq(payload: bytes, datatype: str, num_samples: int) -> np.ndarray:
    """Decode ``num_samples`` complex samples; raises :class:`InvalidPayload` when they aren't."""
    if datatype not in _COMPONENT_DTYPE:
        raise InvalidPayload(f"unknown datatype {datatype!r}")
    expected = num_samples * BYTES_PER_SAMPLE[datatype]
    if len(payload) != expected:
        raise InvalidPayload(
            f"payload is {len(payload)} bytes; {num_samples} samples of {datatype} need {expected}"
        )
    parts = np.frombuffer(payload, dtype=_COMPONENT_DTYPE[datatype]).reshape(-1, 2)
    if datatype == "cf32_le":
        iq = parts.astype(np.float32)
        peak = float(np.abs(iq).max()) if iq.size else 0.0
        if not np.isfinite(peak):
            raise InvalidPayload("payload contains NaN or Inf samples")
        if peak > MAX_CF32_MAGNITUDE:
            raise InvalidPayload(
                f"cf32 sample magnitude {peak:.3g} exceeds {MAX_CF32_MAGNITUDE:g} "
                "(full scale is 1.0): rescale the IQ"
            )
    elif datatype == "ci16_le":
        iq = parts.astype(np.float32) * np.float32(2.0**-15)
    else:
        iq = (parts.astype(np.float32) - np.float32(128.0)) * np.float32(1.0 / 128.0)
    return iq.view(np.complex64).reshape(-1)


def encode_iq(samples: np.ndarray, datatype: str) -> bytes:
    """Encode complex samples as ``datatype`` bytes (integer types round and clip to range)."""
    x = np.asarray(samples, dtype=np.complex64)
    parts = np.stack([x.real, x.imag], axis=-1).reshape(-1)
    if datatype == "cf32_le":
        return parts.astype("<f4").tobytes()
    if datatype == "ci16_le":
        return np.clip(np.rint(parts * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if datatype == "cu8":
        return np.clip(np.rint(parts * 128.0 + 128.0), 0, 255).astype("u1").tobytes()
    raise ValueError(f"unknown datatype {datatype!r}")
