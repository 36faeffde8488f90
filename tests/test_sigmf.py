"""SigMF in and out: our collections pass sigmf's validator; collections written with the
``sigmf`` package itself (no Heimdall extension) become jobs that localize."""

import json

import numpy as np
import pytest
import sigmf
from sigmf import SigMFCollection, SigMFFile
from sigmfwriter import write_with_sigmf

from heimdall.cli import main
from heimdall.dsp.iq import decode_iq
from heimdall.ingest import IngestError, assemble
from heimdall.ingest.sigmf import read_sets
from heimdall.ingest.timestamps import rfc3339_to_ns
from heimdall.schemas.job import datetime_to_ns
from heimdall.sim import ScenarioGenerator, SimConfig


@pytest.fixture
def scenario():
    return ScenarioGenerator(SimConfig(network="reference"), 21).next()  # = simulate --seed 21


def test_simulated_collections_pass_the_sigmf_validator_and_read_back(tmp_path, scenario):
    assert main(["simulate", "--jobs", "2", "--seed", "21", "--sigmf", str(tmp_path)]) == 0
    collections = sorted(tmp_path.glob("*.sigmf-collection"))
    assert len(collections) == 2
    for path in collections:
        meta = json.loads(path.read_text())
        # sigmf 1.14's bundled collection schema wants core:streams items to be arrays, while
        # the spec's text and the package's own SigMFCollection write {name, hash} objects:
        # we follow the package and check the objects here.
        for stream in meta["collection"]["core:streams"]:
            assert set(stream) == {"name", "hash"} and len(stream["hash"]) == 128
        SigMFCollection(metadata=meta, base_path=tmp_path)  # checks every stream's sha512
        for stream in meta["collection"]["core:streams"]:
            recording = sigmf.fromfile(tmp_path / f"{stream['name']}.sigmf-meta")
            recording.validate()
            assert {"name": "heimdall", "version": "1.0.0", "optional": True} in (
                recording.get_global_field("core:extensions")
            )
    sigmf.validate.main(tuple(str(p) for p in tmp_path.glob("*.sigmf-meta")))  # exits if bad

    first = next(s for s in read_sets([tmp_path]) if scenario.scenario_id in s.label)
    job = assemble(first).job
    assert [r.receiver_id for r in job.receivers] == [s.receiver_id for s in scenario.stations]
    for capture, iq in zip(job.receivers, scenario.iq, strict=True):
        assert capture.time_ns == datetime_to_ns(scenario.start_time)
        assert capture.clock.source == "ntp"
        got = decode_iq(capture.inline_bytes(), capture.datatype, capture.num_samples)
        assert np.array_equal(got, iq)


@pytest.mark.parametrize("where", ["captures", "global"])
def test_a_collection_written_with_the_sigmf_package_localizes(
    tmp_path, scenario, localizer, where
):
    path = write_with_sigmf(tmp_path, scenario, ["ci16_le", "cf32_le"], geolocation_in=where)
    (found,) = read_sets([path])
    job = assemble(found).job
    assert {r.datatype for r in job.receivers} == {"ci16_le", "cf32_le"}
    assert all(r.clock.source == "free" for r in job.receivers)
    assert job.receivers[0].lat == scenario.stations[0].lat  # longitude first in GeoJSON
    result = localizer.localize(job)
    assert result.status == "ok", result.error
    assert result.method == "rss"


@pytest.mark.parametrize("archive", ["archived.sigmf", "archived.sigmf.gz"])
def test_an_archive_and_a_converted_datatype(tmp_path, scenario, archive):
    iq = scenario.iq[0]
    ints = np.clip(np.round(np.stack([iq.real, iq.imag], 1) * 128), -128, 127).astype("i1")
    data = tmp_path / "x.sigmf-data"
    data.write_bytes(ints.tobytes())
    handle = SigMFFile(
        global_info={
            "core:datatype": "ci8",
            "core:sample_rate": 50_000,
            "core:geolocation": {"type": "Point", "coordinates": [7.5, 45.1]},
        },
        data_file=data,
    )
    handle.add_capture(
        0, metadata={"core:frequency": 145.5e6, "core:datetime": "2026-11-27T10:00:00.1234567891Z"}
    )
    handle.tofile(tmp_path / archive)
    data.unlink()
    (found,) = read_sets([tmp_path / archive])
    (rec,) = found.recordings
    assert rec.datatype == "ci16_le" and "ci8 converted to ci16_le" in " ".join(rec.notes)
    assert rec.time_ns == rfc3339_to_ns("2026-11-27T10:00:00Z") + 123_456_789
    got = np.frombuffer(rec.read(0, 64), "<i2").reshape(-1, 2)
    assert np.array_equal(got, ints[:64].astype(np.int16) * 256)
    assert (rec.lat, rec.lon) == (45.1, 7.5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["global"].pop("core:sample_rate"), r"global\.core:sample_rate is None"),
        (lambda m: m["global"].update({"core:datatype": "ri16_le"}), "real-valued"),
        (lambda m: m["captures"][0].pop("core:geolocation"), "no core:geolocation in captures"),
        (lambda m: m["captures"][0].pop("core:frequency"), r"captures\[0\]\.core:frequency"),
        (lambda m: m["captures"][0].pop("core:datetime"), r"captures\[0\]\.core:datetime is"),
        (lambda m: m["captures"][0].update({"core:datetime": "noon"}), "not an RFC 3339"),
        (
            lambda m: m["captures"][0].update({"core:geolocation": {"coordinates": [45.0]}}),
            "not a GeoJSON Point",
        ),
        (lambda m: m["global"].update({"heimdall:clock_source": "sundial"}), "clock_source"),
    ],
)
def test_bad_metadata_is_refused_naming_file_and_field(tmp_path, scenario, edit, message):
    write_with_sigmf(tmp_path, scenario, ["cf32_le"])
    meta_path = tmp_path / "rx0.sigmf-meta"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    (refusal,) = read_sets([meta_path])
    assert isinstance(refusal, IngestError)
    assert "rx0.sigmf-meta" in str(refusal)
    assert refusal.problem and __import__("re").search(message, str(refusal))


def test_a_collection_whose_stream_is_missing_is_refused(tmp_path, scenario):
    path = write_with_sigmf(tmp_path, scenario, ["cf32_le"])
    (tmp_path / "rx1.sigmf-meta").unlink()
    (refusal,) = read_sets([path])
    assert isinstance(refusal, IngestError) and "stream 'rx1'" in str(refusal)


def test_a_missing_path_and_a_missing_time_say_what_to_do(tmp_path):
    from heimdall.ingest import IngestError
    from heimdall.ingest.sigmf import read_sets

    (refused,) = read_sets([tmp_path / "nowhere.sigmf-collection"])
    assert isinstance(refused, IngestError) and "no such file or directory" in str(refused)
    (refused,) = read_sets([tmp_path / "typo.txt"])
    assert "no such file or directory" in str(refused)


def test_a_capture_without_time_says_how_to_add_it(tmp_path):
    from sigmfwriter import write_with_sigmf

    from heimdall.ingest import IngestError
    from heimdall.ingest.sigmf import read_sets
    from heimdall.sim import ScenarioGenerator, SimConfig

    scenario = ScenarioGenerator(SimConfig(network="reference"), seed=5).next()
    write_with_sigmf(tmp_path, scenario, ["cf32_le"])
    meta = tmp_path / "rx0.sigmf-meta"
    record = json.loads(meta.read_text())
    del record["captures"][0]["core:datetime"]
    meta.write_text(json.dumps(record))
    (refused,) = read_sets([meta])
    assert isinstance(refused, IngestError)
    assert "core:datetime is missing" in str(refused) and "RFC 3339" in str(refused)
