"""IQ decoding against hand-computed golden values (SigMF conventions, I before Q)."""

import numpy as np
import pytest

from heimdall.dsp.iq import decode_iq, encode_iq
from heimdall.schemas.errors import InvalidPayload


def test_ci16_golden():
    payload = np.array([16384, -16384, 32767, -32768], dtype="<i2").tobytes()
    x = decode_iq(payload, "ci16_le", 2)
    assert x.dtype == np.complex64
    np.testing.assert_allclose(x, [0.5 - 0.5j, 32767 / 32768 - 1j], rtol=0, atol=1e-7)
    assert abs(x[1].real - 0.99997) < 1e-5


def test_ci16_is_little_endian():
    payload = bytes([0x00, 0x40, 0x00, 0xC0])  # 0x4000 = 16384, 0xC000 = -16384 little-endian
    assert decode_iq(payload, "ci16_le", 1)[0] == pytest.approx(0.5 - 0.5j)


def test_cf32_golden():
    payload = np.array([1.0, -2.0, 0.25, 3.5], dtype="<f4").tobytes()
    np.testing.assert_array_equal(decode_iq(payload, "cf32_le", 2), [1 - 2j, 0.25 + 3.5j])


def test_cu8_golden():
    payload = bytes([128, 0, 255, 192])
    x = decode_iq(payload, "cu8", 2)
    np.testing.assert_allclose(x, [0.0 - 1.0j, 127 / 128 + 0.5j], atol=1e-7)


@pytest.mark.parametrize("datatype", ["cf32_le", "ci16_le", "cu8"])
def test_round_trip_within_quantization(datatype):
    rng = np.random.default_rng(0)
    x = (rng.uniform(-0.9, 0.9, 100) + 1j * rng.uniform(-0.9, 0.9, 100)).astype(np.complex64)
    step = {"cf32_le": 0.0, "ci16_le": 2.0**-15, "cu8": 1 / 128}[datatype]
    y = decode_iq(encode_iq(x, datatype), datatype, 100)
    assert np.abs(y.real - x.real).max() <= step / 2 + 1e-7
    assert np.abs(y.imag - x.imag).max() <= step / 2 + 1e-7


@pytest.mark.parametrize(("datatype", "size"), [("cf32_le", 8), ("ci16_le", 4), ("cu8", 2)])
def test_byte_length_must_match(datatype, size):
    with pytest.raises(InvalidPayload, match=f"need {10 * size}"):
        decode_iq(b"\x00" * (10 * size - 1), datatype, 10)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_cf32_rejects_non_finite(bad):
    payload = np.array([0.0, 1.0, bad, 0.0], dtype="<f4").tobytes()
    with pytest.raises(InvalidPayload, match="NaN or Inf"):
        decode_iq(payload, "cf32_le", 2)


def test_unknown_datatype():
    with pytest.raises(InvalidPayload, match="unknown datatype"):
        decode_iq(b"\x00" * 8, "ri8", 4)
