"""KiwiSDR websocket frames: built here byte by byte from the layout KiwiSDR's client reads
(jks-prv/kiwiclient ``_process_aud``), not from our encoder."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from heimdall.acquire.frames import (
    SND_FLAG_LITTLE_ENDIAN,
    SND_FLAG_STEREO,
    FrameError,
    GnssStamp,
    decode_msg,
    decode_sound,
    encode_msg,
    encode_sound,
    split_tag,
)


def _iq_body(flags, seq, smeter_raw, solution, gpssec, gpsnsec, iq, endian=">"):
    header = struct.pack("<BI", flags, seq) + struct.pack(">H", smeter_raw)
    gnss = struct.pack("<BBII", solution, 0, gpssec, gpsnsec)
    return header + gnss + struct.pack(f"{endian}{iq.size}h", *iq.ravel().tolist())


def test_an_iq_frame_is_read_as_kiwisdr_lays_it_out():
    iq = np.array([[1, -2], [300, -32768], [32767, 0]], dtype=np.int16)
    body = _iq_body(SND_FLAG_STEREO, 123456, 470, 3, 518_400, 999_999_999, iq)
    frame = decode_sound(body, stereo=True)
    assert frame.seq == 123456 and frame.smeter_dbm == pytest.approx(-80.0)
    assert frame.gnss == GnssStamp(3, 518_400, 999_999_999) and frame.gnss.has_fix
    assert np.array_equal(frame.samples, iq)


def test_little_endian_samples_when_the_flag_says_so():
    iq = np.array([[258, -3]], dtype=np.int16)
    body = _iq_body(SND_FLAG_STEREO | SND_FLAG_LITTLE_ENDIAN, 1, 0, 0, 1, 2, iq, endian="<")
    assert np.array_equal(decode_sound(body, stereo=True).samples, iq)


def test_no_fix_is_said_by_last_gps_solution():
    body = _iq_body(SND_FLAG_STEREO, 1, 0, 255, 0, 0, np.zeros((2, 2), np.int16))
    assert not decode_sound(body, stereo=True).gnss.has_fix


def test_what_we_send_is_what_the_layout_reads():
    iq = np.random.default_rng(1).integers(-32768, 32767, (512, 2)).astype(np.int16)
    message = encode_sound(77, iq, GnssStamp(1, 86_400, 12_345), smeter_dbm=-73.4)
    tag, body = split_tag(message)
    assert tag == "SND"
    assert body == _iq_body(SND_FLAG_STEREO, 77, 536, 1, 86_400, 12_345, iq)


@pytest.mark.parametrize(
    "body, words",
    [
        (b"\x00\x01", "header"),
        (struct.pack("<BI", SND_FLAG_STEREO, 1) + b"\x00\x00" + b"\x00" * 4, "GNSS header"),
        (struct.pack("<BI", 0x10, 1) + b"\x00\x00" + b"\x00" * 8, "compress"),
        (_iq_body(SND_FLAG_STEREO, 1, 0, 0, 0, 0, np.zeros((1, 2), np.int16)) + b"\x00", "whole"),
    ],
)
def test_a_broken_frame_is_named(body, words):
    with pytest.raises(FrameError, match=words):
        decode_sound(body, stereo=True)


def test_msg_items_are_read_and_written():
    items = decode_msg(b"\x00too_busy=4 badp=1 down version_maj=1 version_min=834 name=a%20b")
    assert items == {"too_busy": "4", "badp": "1", "down": None, "version_maj": "1",
                     "version_min": "834", "name": "a b"}  # fmt: skip
    tag, body = split_tag(encode_msg(sample_rate="12001.135", name="Roof SDR", down=None))
    assert tag == "MSG"
    assert decode_msg(body) == {"sample_rate": "12001.135", "name": "Roof SDR", "down": None}
