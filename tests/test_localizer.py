"""Localizer: real ONNX session, coded failures for malformed jobs, refuses tampered models."""

import base64
import json
import shutil

import numpy as np
import pytest

from heimdall.dsp.iq import encode_iq
from heimdall.dsp.resample import resample_to
from heimdall.geo import LocalFrame, ellipse_from_covariance
from heimdall.inference import Localizer, load_model_files
from heimdall.schemas import IQJob, ModelIntegrityError
from heimdall.schemas.manifest import file_sha256
from heimdall.schemas.result import Timings
from heimdall.sim import ScenarioGenerator, SimConfig


def _dump(job: IQJob) -> dict:
    return json.loads(job.to_json())


def test_ok_result_is_complete_and_consistent(localizer, job, scenario):
    result = localizer.localize(job)
    assert result.status == "ok", result.error
    assert result.job_id == job.job_id
    assert result.model_version == localizer.version
    assert result.receivers_used == [r.receiver_id for r in job.receivers]
    cov = np.array(result.covariance_en_m2)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    axes = ellipse_from_covariance(cov, job.confidence)
    assert result.ellipse.semi_major_m == pytest.approx(axes.semi_major_m)
    assert result.ellipse.orientation_deg == pytest.approx(axes.orientation_deg)
    point, polygon, *receivers = result.geojson["features"]
    assert point["geometry"]["coordinates"] == pytest.approx(
        [result.position.lon, result.position.lat], abs=1e-7
    )
    assert len(polygon["geometry"]["coordinates"][0]) == 65
    assert [(f["properties"]["receiver_id"], f["geometry"]["coordinates"]) for f in receivers] == [
        (r.receiver_id, pytest.approx([r.lon, r.lat], abs=1e-7)) for r in job.receivers
    ]
    t = result.timings_ms
    assert t.features > 0 and t.inference > 0 and t.total >= t.features + t.inference
    e, n, _ = LocalFrame(scenario.true_lat, scenario.true_lon).to_enu(
        result.position.lat, result.position.lon
    )
    assert np.hypot(e, n) < 300_000  # inside the region, not garbage


def test_confidence_scales_the_ellipse(localizer, job):
    r95 = localizer.localize(job)
    r50 = localizer.localize(job.model_copy(update={"confidence": 0.5}))
    ratio = r95.ellipse.semi_major_m / r50.ellipse.semi_major_m
    assert ratio == pytest.approx(np.sqrt(np.log(0.05) / np.log(0.5)), rel=1e-9)


def test_accuracy_on_reference_network(localizer):
    """A sanity bar far below the eval's: the trained model localizes, not guesses."""
    gen = ScenarioGenerator(SimConfig(network="reference"), seed=31337)
    errors = []
    for sc in gen.take(60):
        r = localizer.localize(sc.to_job())
        e, n, _ = LocalFrame(sc.true_lat, sc.true_lon).to_enu(r.position.lat, r.position.lon)
        errors.append(np.hypot(e, n))
    assert np.median(errors) < 40_000


def test_resampled_capture_gives_a_close_answer(localizer, scenario):
    base = localizer.localize(scenario.to_job())
    job = _dump(scenario.to_job())
    # receiver 0 recorded at 48 kHz: same signal, resampled down, sent as ci16
    x48 = resample_to(scenario.iq[0], 50_000, 48_000)
    job["receivers"][0].update(
        sample_rate_hz=48_000.0,
        datatype="cf32_le",
        num_samples=len(x48),
        iq_b64=base64.b64encode(encode_iq(x48, "cf32_le")).decode(),
    )
    r = localizer.localize(job)
    assert r.status == "ok", r.error
    e, n, _ = LocalFrame(base.position.lat, base.position.lon).to_enu(
        r.position.lat, r.position.lon
    )
    assert np.hypot(e, n) < 5_000


def test_iq_ref_payloads_come_from_the_caller(localizer, scenario):
    job = _dump(scenario.to_job())
    payloads = {}
    for i, rx in enumerate(job["receivers"]):
        payloads[i] = base64.b64decode(rx.pop("iq_b64"))
        rx["iq_ref"] = f"heimdall:iq:{job['job_id']}:{i}"
    inline = localizer.localize(scenario.to_job())
    by_ref = localizer.localize(job, payloads)
    assert by_ref.status == "ok"
    assert by_ref.position == inline.position


class _Source:
    """A payload source that reads some bytes, then fails as ``error`` says."""

    def __init__(self, payloads: dict, error: Exception | None) -> None:
        self.payloads, self.error, self.asked = payloads, error, []

    def get(self, index: int) -> bytes | None:
        self.asked.append(index)
        if self.error is not None and len(self.asked) > 1:
            raise self.error
        return self.payloads.get(index)


def _by_reference(scenario) -> tuple[dict, dict]:
    job = _dump(scenario.to_job())
    payloads = {}
    for i, rx in enumerate(job["receivers"]):
        payloads[i] = base64.b64decode(rx.pop("iq_b64"))
        rx["iq_ref"] = f"heimdall:iq:{job['job_id']}:{i}"
    return job, payloads


def test_a_source_that_cannot_be_read_now_is_not_the_jobs_failure(localizer, scenario):
    """PayloadsUnavailable (the store went away) propagates, for the caller to requeue; any
    other error of a source fails the job; time spent reading is the fetch stage."""
    from heimdall.inference.payloads import PayloadsUnavailable

    job, payloads = _by_reference(scenario)
    gone = _Source(payloads, PayloadsUnavailable("store away"))
    with pytest.raises(PayloadsUnavailable):
        localizer.localize(job, gone)
    broken = localizer.localize(job, _Source(payloads, ValueError("a bug in a source")))
    assert broken.status == "failed" and broken.error.code.value == "internal"
    timed = localizer.localize(job, _Source(payloads, None), Timings(fetch=5.0))
    assert timed.status == "ok" and timed.timings_ms.fetch >= 5.0
    assert timed.timings_ms.features is not None and timed.timings_ms.total is not None


def test_a_hosts_interruption_stops_the_localizer(localizer, scenario):
    from heimdall.inference import payloads as source

    class Stop(Exception):
        pass

    job, payloads = _by_reference(scenario)
    before = source.interruptions()
    source.interrupt_with(Stop)
    try:
        with pytest.raises(Stop):
            localizer.localize_many([(job, _Source(payloads, Stop()), Timings())])
    finally:
        source._interruptions = before


def _failure(localizer, job, payloads=None):
    r = localizer.localize(job, payloads)
    assert r.status == "failed"
    assert r.position is None and r.ellipse is None
    return r.error.code.value, r.error.message


def test_too_few_receivers(localizer, job):
    data = _dump(job)
    data["receivers"] = data["receivers"][:2]
    code, message = _failure(localizer, data)
    assert code == "too_few_receivers" and "2 receivers" in message


def test_wrong_byte_length(localizer, job):
    data = _dump(job)
    data["receivers"][1]["num_samples"] -= 1
    code, message = _failure(localizer, data)
    assert code == "invalid_payload" and "receivers[1]" in message


def test_nan_samples(localizer, job):
    data = _dump(job)
    x = np.zeros(job.receivers[2].num_samples, np.complex64)
    x[10] = np.nan
    data["receivers"][2]["iq_b64"] = base64.b64encode(encode_iq(x, "cf32_le")).decode()
    code, message = _failure(localizer, data)
    assert code == "invalid_payload" and "NaN" in message


def test_bad_base64(localizer, job):
    data = _dump(job)
    data["receivers"][0]["iq_b64"] = "not base64!!"
    assert _failure(localizer, data)[0] == "invalid_payload"


def test_missing_blob(localizer, job):
    data = _dump(job)
    data["receivers"][0].pop("iq_b64")
    data["receivers"][0]["iq_ref"] = "heimdall:iq:gone:0"
    code, message = _failure(localizer, data, payloads={})
    assert code == "payload_missing" and "heimdall:iq:gone:0" in message


def test_unsupported_sample_rate(localizer, job):
    data = _dump(job)
    data["receivers"][0]["sample_rate_hz"] = 50_000 * np.e / 2
    code, message = _failure(localizer, data)
    assert code == "unsupported_sample_rate" and "receivers[0]" in message


def test_unknown_model(localizer, job):
    code, message = _failure(localizer, job.model_copy(update={"model": "v999"}))
    assert code == "unknown_model" and "v999" in message


def test_invalid_job_names_the_field(localizer, job):
    data = _dump(job)
    data["receivers"][3]["lat"] = 123.0
    code, message = _failure(localizer, data)
    assert code == "invalid_job" and "receivers.3.lat" in message
    assert localizer.localize(data).job_id == job.job_id
    assert localizer.localize({"nonsense": True}).error.code.value == "invalid_job"


def _with_iq(data: dict, index: int, samples: np.ndarray, datatype: str = "cf32_le") -> dict:
    data["receivers"][index]["iq_b64"] = base64.b64encode(encode_iq(samples, datatype)).decode()
    data["receivers"][index]["datatype"] = datatype
    return data


@pytest.mark.parametrize("datatype", ["cf32_le", "ci16_le", "cu8"])
def test_all_zero_iq_is_no_signal_not_a_position(localizer, job, datatype):
    data = _dump(job)
    for i, rx in enumerate(job.receivers):
        _with_iq(data, i, np.zeros(rx.num_samples, np.complex64), datatype)
    code, message = _failure(localizer, data)
    assert code == "no_signal" and f"0 of {len(job.receivers)} receivers" in message


def test_pure_noise_is_no_signal(localizer, job):
    rng = np.random.default_rng(5)
    data = _dump(job)
    for i, rx in enumerate(job.receivers):
        n = rx.num_samples
        _with_iq(data, i, 1e-3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n)))
    assert _failure(localizer, data)[0] == "no_signal"


def test_huge_finite_samples_are_an_invalid_payload(localizer, job):
    data = _dump(job)
    _with_iq(data, 1, np.full(job.receivers[1].num_samples, 3e38 + 3e38j, np.complex64))
    code, message = _failure(localizer, data)
    assert code == "invalid_payload" and "receivers[1]" in message and "magnitude" in message


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("submitted_at", "0001-01-01T00:00:00+14:00", "submitted_at"),
        ("submitted_at", "9999-12-31T23:59:59-14:00", "submitted_at"),
        ("meta", {"deep": json.loads("[" * 900 + "]" * 900)}, "meta"),
    ],
)
def test_out_of_range_job_fields_are_invalid_jobs(localizer, job, field, value, named):
    data = _dump(job) | {field: value}
    code, message = _failure(localizer, data)
    assert code == "invalid_job" and named in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sample_rate_hz", 1e308),
        ("center_frequency_hz", 1e300),
        ("start_time", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_out_of_range_capture_fields_are_invalid_jobs(localizer, job, field, value):
    data = _dump(job)
    data["receivers"][0][field] = value
    code, message = _failure(localizer, data)
    assert code == "invalid_job" and f"receivers.0.{field}" in message


class _Untouchable(dict):
    def get(self, *_):
        raise AssertionError("IQ was fetched for a job over the sample cap")


def test_job_over_the_sample_cap_is_refused_before_any_iq(model_dir, job):
    capped = Localizer(model_dir, max_job_samples=job.total_samples - 1)
    data = _dump(job)
    for rx in data["receivers"]:
        rx.pop("iq_b64")
        rx["iq_ref"] = "heimdall:iq:never-read"
    code, message = _failure(capped, data, payloads=_Untouchable())
    assert code == "invalid_job" and str(job.total_samples) in message
    at_the_cap = Localizer(model_dir, max_job_samples=job.total_samples)
    assert at_the_cap.localize(job).status == "ok"


@pytest.fixture
def model_copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_refuses_onnx_that_does_not_match_its_sha256(model_copy):
    onnx = model_copy / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        Localizer(model_copy)


def test_refuses_manifest_whose_io_disagrees_with_the_onnx(model_copy):
    path = model_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["inputs"][0]["name"] = "spectrogram"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="inputs"):
        Localizer(model_copy)
    manifest["inputs"][0]["name"] = "spectra"
    manifest["inputs"][0]["shape"] = ["B", "R", 128, "T"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="axis 2"):
        Localizer(model_copy)


def test_refuses_missing_or_broken_manifest(model_copy, tmp_path):
    (model_copy / "manifest.json").write_text("{")
    with pytest.raises(ModelIntegrityError, match="not valid JSON"):
        load_model_files(model_copy)
    with pytest.raises(ModelIntegrityError, match="does not exist"):
        load_model_files(tmp_path / "nowhere")


def test_manifest_records_what_serving_needs(model_dir):
    files = load_model_files(model_dir)
    m = files.manifest
    assert m.onnx_sha256 == file_sha256(files.onnx_path)
    pre = m.preprocessing
    assert (pre.sample_rate_hz, pre.n_fft, pre.hop, pre.n_mels) == (50_000, 512, 128, 32)
    assert pre.std_db > 0 and -150 < pre.mean_db < 0
    assert m.training["simulator"]["sample_rate_hz"] == 50_000
    assert "seed" in m.training["config"]
    assert files.onnx_path.stat().st_size < 5 * 2**20


def test_a_job_outside_the_trained_band_gets_no_rss_guess(localizer, job, model_dir):
    band = localizer.manifest.frequency_range_hz
    assert band == (144e6, 146e6)  # the simulator's 2 m band, recorded in the manifest
    data = _dump(job)
    data["receivers"][2]["center_frequency_hz"] = 7.1e6  # an HF recording, e.g. a KiwiSDR
    code, message = _failure(localizer, data)
    assert code == "unsupported_frequency"
    assert "receivers[2]" in message and "7.1 MHz" in message and "144 MHz–146 MHz" in message


@pytest.mark.parametrize("method", ["tdoa", "hybrid"])
def test_time_differences_asked_for_without_gnss_time_is_no_common_time(localizer, job, method):
    code, message = _failure(localizer, job.model_copy(update={"method": method}))
    assert code == "no_common_time" and "GNSS time" in message


def test_rss_and_auto_say_which_method_answered(localizer, job):
    for method in ("auto", "rss"):
        result = localizer.localize(job.model_copy(update={"method": method}))
        assert result.status == "ok" and result.method == "rss"


def test_localize_many_runs_one_batch_and_equals_one_by_one(localizer):
    """B > 1 in one ONNX call gives each job the answer it gets alone; a bad job fails alone."""
    cfg = SimConfig(network="reference", missing_probability=0.0)
    gen = ScenarioGenerator(cfg, seed=4040)
    jobs = [gen.next().to_job(job_id=f"00000000-0000-4000-8000-00000000000{i}") for i in range(5)]
    jobs[2] = jobs[2].model_copy(update={"receivers": jobs[2].receivers[:2]})  # too few
    calls = []
    real_run = localizer.session.run

    def counting_run(names, inputs):
        calls.append(inputs["spectra"].shape[0])
        return real_run(names, inputs)

    localizer.session.run = counting_run
    try:
        batched = localizer.localize_many([(j, None, Timings()) for j in jobs])
    finally:
        localizer.session.run = real_run
    assert calls == [4]  # four good jobs of one shape: one call
    alone = [localizer.localize(j) for j in jobs]
    assert [r.job_id for r in batched] == [j.job_id for j in jobs]
    assert batched[2].status == "failed" and batched[2].error.code.value == "too_few_receivers"
    for b, a in zip(batched, alone, strict=True):
        assert b.status == a.status
        if a.status == "ok":
            assert b.position.lat == pytest.approx(a.position.lat, abs=1e-7)
            assert b.position.lon == pytest.approx(a.position.lon, abs=1e-7)
            np.testing.assert_allclose(b.covariance_en_m2, a.covariance_en_m2, rtol=1e-4)
            assert b.timings_ms.inference > 0 and b.timings_ms.features > 0
