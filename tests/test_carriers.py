"""Signals with a spectral line (DESIGN §11): the line's phase is the carrier's, not a group
delay, so the delay must come from the modulation; a bare carrier is not a position."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from heimdall.sim.signals import make_signal
from heimdall.tdoa.align import TimedCapture, align
from heimdall.tdoa.correlate import (
    BLOCK,
    SKY_FADING_S,
    block_spectra,
    pair_delays,
    sky_fading_average,
    spectral_lines,
)

FS = 12_000.0
CARRIER_HZ = 400.0


def _audio(rng: np.random.Generator, n: int) -> np.ndarray:
    """Band-limited noise, 200–2500 Hz, in [−1, 1]: a voice-like continuous spectrum."""
    sos = sps.butter(6, [200.0, 2500.0], btype="bandpass", fs=FS, output="sos")
    audio = sps.sosfilt(sos, rng.standard_normal(n + 4000))[4000:]
    return audio / np.abs(audio).max()


def _delayed(x: np.ndarray, delay_s: float) -> np.ndarray:
    """``x`` late by ``delay_s`` (an FFT phase ramp: exact for a periodic band-limited x)."""
    freqs = np.fft.fftfreq(len(x), 1 / FS)
    return np.fft.ifft(np.fft.fft(x) * np.exp(-2j * np.pi * freqs * delay_s))


def _am(rng, n, carrier_phase_rad=0.0):
    """AM voice with full carrier at +CARRIER_HZ; the carrier alone turned by
    ``carrier_phase_rad`` (what a receiver's channel does to a line: phase delay ≠ group
    delay)."""
    t = np.arange(n) / FS
    tone = np.exp(2j * np.pi * CARRIER_HZ * t)
    return (np.exp(1j * carrier_phase_rad) + 0.5 * _audio(rng, n)) * tone


def _captures(rows, clock_ns=1.0):
    return [
        TimedCapture(i, f"r{i}", 50.0 + 0.5 * i, 9.0 + 0.4 * (i % 2), 100.0,
                     row.astype(np.complex64), 10**18, FS, 77_500.0, clock_ns)
        for i, row in enumerate(rows)
    ]  # fmt: skip


def test_the_carrier_and_its_leakage_are_found_and_the_sidebands_kept():
    rng = np.random.default_rng(1)
    n = 8 * BLOCK
    x = _am(rng, n) + 0.01 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    power = (np.abs(block_spectra(x[None, :])) ** 2).mean(axis=1)
    lines = spectral_lines(power)
    freqs = np.fft.fftfreq(2 * BLOCK, 1 / FS)
    at = lambda f: int(np.argmin(np.abs(freqs - f)))  # noqa: E731
    assert lines[at(CARRIER_HZ)] and lines[at(CARRIER_HZ + 1.5)] and lines[at(CARRIER_HZ - 1.5)]
    # the sidebands 200–2500 Hz from the carrier carry the delay: none of them is left out
    for offset_hz in (250.0, 600.0, 1200.0, 2400.0, -250.0, -1200.0, -2400.0):
        assert not lines[at(CARRIER_HZ + offset_hz)], offset_hz
    assert lines.sum() * FS / (2 * BLOCK) < 150  # a carrier and its skirt (Hz), not a band


def test_a_signal_without_lines_has_none():
    rng = np.random.default_rng(2)
    n = 8 * BLOCK
    x = _audio(rng, n) + 0.01 * rng.standard_normal(n)
    power = (np.abs(block_spectra(x[None, :].astype(np.complex64))) ** 2).mean(axis=1)
    assert not spectral_lines(power).any()


@pytest.mark.parametrize("carrier_phase_deg", [60.0, 120.0, 180.0])
def test_a_carrier_whose_phase_is_not_the_delay_does_not_move_the_delay(carrier_phase_deg):
    """Receiver b's carrier is turned (its phase carries no delay); the modulation is late by
    exactly 137.5 µs. The pair delay must be the modulation's, within a few µs."""
    rng = np.random.default_rng(3)
    n = 24 * BLOCK
    clean = _am(rng, n)
    turned = clean + (np.exp(1j * np.deg2rad(carrier_phase_deg)) - 1) * np.exp(
        2j * np.pi * CARRIER_HZ * np.arange(n) / FS
    )
    delay_s = 137.5e-6
    noise = lambda: 0.02 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))  # noqa: E731
    rows = [clean + noise(), _delayed(turned, delay_s) + noise(), _delayed(clean, 40e-6) + noise()]
    pairs, bandwidth_hz, _ = pair_delays(align(_captures(rows)))
    (ab,) = [p for p in pairs if (p.a, p.b) == (0, 1)]
    assert abs(ab.delay_s - (-delay_s)) < 3e-6, ab.delay_s
    assert bandwidth_hz > 500  # the band used is the sidebands', not the carrier's


def test_an_unmodulated_carrier_is_no_signal(localizer):
    """Only a line at every receiver: nothing carries a delay, so no position (a code), never
    a confident fix."""
    import base64
    import uuid

    from heimdall.dsp.iq import encode_iq
    from heimdall.schemas.job import Clock, IQJob, ReceiverCapture, ns_to_datetime

    rng = np.random.default_rng(4)
    n = 60_000
    receivers = []
    for i in range(4):
        t = np.arange(n) / FS
        x = np.exp(1j * (2 * np.pi * CARRIER_HZ * t + rng.uniform(0, 2 * np.pi)))
        x = x + 0.01 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
        stamp_ns = 1_795_000_000 * 10**9 + i * 1000
        receivers.append(
            ReceiverCapture(
                receiver_id=f"r{i}", lat=50.0 + 0.8 * (i % 2), lon=9.0 + 0.9 * (i // 2),
                alt_m=100.0, sample_rate_hz=FS, center_frequency_hz=77_500.0,
                start_time=ns_to_datetime(stamp_ns), datatype="cf32_le", num_samples=n,
                iq_b64=base64.b64encode(encode_iq(x.astype(np.complex64), "cf32_le")).decode(),
                time_ns=stamp_ns, clock=Clock(source="gnss", uncertainty_ns=50.0),
            )
        )  # fmt: skip
    result = localizer.localize(IQJob(job_id=str(uuid.uuid4()), receivers=receivers, method="tdoa"))
    assert result.status == "failed" and result.error.code == "no_signal", result


def test_the_time_signal_is_dcf77_as_published():
    """Carrier at 15 % for 0.1 s or 0.2 s after each second mark; from 0.2 s, 512 chips of
    ±15.6° at 645.16 chips/s (PTB's description of DCF77)."""
    rng = np.random.default_rng(5)
    s = make_signal("time-signal", 3.0, rng)
    mark = s.params["second_phase_s"]
    t = mark + 1.0 + np.arange(0, 1.0, 1 / 200_000.0)  # one second, 200 kHz
    x = s(t) * np.exp(-2j * np.pi * s.offset_hz * t)
    into = t - t[0]
    amplitude, phase_deg = np.abs(x), np.rad2deg(np.angle(x))
    assert np.allclose(amplitude[(into > 0.01) & (into < 0.09)], 0.15, atol=1e-9)
    assert np.allclose(amplitude[into > 0.21], 1.0, atol=1e-9)
    chips = (into > 0.2) & (into < 0.2 + 512 / 645.16)
    steady = np.abs(np.abs(phase_deg[chips]) - 15.6) < 1e-6
    assert steady.mean() > 0.8 and np.all(np.abs(phase_deg) <= 15.6 + 1e-6)
    # phase changes happen only at chip boundaries 1/645.16 s apart (± the shaped edge)
    moving = into[chips][~steady]
    chip_phase = ((moving - 0.2) * 645.16) % 1.0
    assert np.all(chip_phase < 0.13)


def test_a_time_signal_set_from_kiwisdr_files_localizes_by_time(localizer, tmp_path):
    """The LF time-signal station (77.5 kHz, sky wave, receiver biases) written as KiwiSDR WAVs
    at 12 kHz with GNSS stamps, read back by ingest: a fix whose ellipse holds the truth."""
    from heimdall.harness.scoring import error_m, inside_ellipse
    from heimdall.ingest import assemble
    from heimdall.ingest.kiwi import read_sets
    from heimdall.sim.kiwiwav import write_kiwi_set
    from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

    config = TdoaSimConfig(network="hf", num_samples=(96_000, 96_000), random_receivers=(4, 4))
    scenario = TdoaScenarioGenerator(config, seed=3).next(kind="time-signal")
    (found,) = read_sets(write_kiwi_set(scenario.job, tmp_path, stamp_noise_ns=40.0))
    job = assemble(found).job
    assert {r.center_frequency_hz for r in job.receivers} == {77_500.0}
    result = localizer.localize(job)
    assert result.status == "ok" and result.method == "tdoa", result.error
    assert inside_ellipse(result, scenario.true_lat, scenario.true_lon)
    assert error_m(result, scenario.true_lat, scenario.true_lon) < 60_000  # 500–1500 km apart


@pytest.mark.parametrize(
    ("duration_s", "fading_hz", "pulled"),
    [(2.0, 0.13, True), (30.0, 0.13, False), (30.0, 0.0, True)],
)
def test_a_fading_sky_wave_pulls_a_short_capture_and_averages_out_of_a_long_one(
    duration_s, fading_hz, pulled
):
    """DCF77-like signal; receiver 0 also hears a sky wave −10 dB, 200 µs late, its phase
    turning at ``fading_hz`` (the D layer moving); receivers 1 and 2 hear the ground wave
    alone, at the same range. Unresolved (1/B ≈ 4 ms), the sky wave pulls the peak by
    ~g·δ·⟨cos φ⟩/(1+g) ≈ 35 µs while its phase stands: in 2 s it hardly turns, over 30 s
    (~4 fading periods) the pull averages out — why the floor's sky terms shrink as
    1/√(periods) (``sky_fading_average``). A sky wave that does not fade is not averaged:
    the limit the README names."""
    rng = np.random.default_rng(11)
    s = make_signal("time-signal", duration_s, rng)
    t = np.arange(int(duration_s * FS)) / FS
    sky = 10 ** (-10 / 20) * np.exp(2j * np.pi * fading_hz * t) * s(t - 200e-6)
    noise = rng.standard_normal((3, len(t))) + 1j * rng.standard_normal((3, len(t)))
    rows = np.stack([s(t) + sky, s(t), s(t)]) + 0.02 * noise
    pairs, _, _ = pair_delays(align(_captures(rows)), floor_s=0.0)
    (pair,) = [p for p in pairs if (p.a, p.b) == (0, 1)]
    assert (abs(pair.delay_s) > 20e-6) == pulled
    if not pulled:
        assert abs(pair.delay_s) < 2e-6
    share = np.sqrt(SKY_FADING_S / max(duration_s, SKY_FADING_S))
    assert sky_fading_average(duration_s) == pytest.approx(share)
