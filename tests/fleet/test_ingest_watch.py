"""The drop folder end to end: real worker, real Redis; a dropped set becomes a result on the
stream, a broken file goes to rejected/ with its reason, and the folder keeps watching."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from heimdall.cli.ingest import write_job_sigmf
from heimdall.sim import ScenarioGenerator, SimConfig

pytestmark = pytest.mark.slow


def _drop(scenario, staging, folder) -> str:
    """Write a collection elsewhere, then move it in file by file, as a copy would land."""
    target = staging / scenario.scenario_id
    truth = {"lat": scenario.true_lat, "lon": scenario.true_lon}
    collection = write_job_sigmf(scenario.to_job("ci16_le"), truth, target)
    for path in sorted(target.iterdir()):
        shutil.move(str(path), str(folder / path.name))
    return collection.name


def _wait_for(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_dropped_sets_reach_the_stream_and_a_broken_file_is_rejected(serving_fleet, tmp_path):
    fleet = serving_fleet
    folder, staging = tmp_path / "drop", tmp_path / "staging"
    folder.mkdir()
    cmd = [sys.executable, "-m", "heimdall.cli", "ingest", "watch", str(folder),
           "--settle", "0.5", "--interval", "0.2"]  # fmt: skip
    watcher = subprocess.Popen(
        cmd,
        env={**os.environ, **fleet.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), 5)
        first = _drop(gen.next(), staging, folder)
        (folder / "broken.sigmf-collection").write_text("{ this is not json")
        (folder / "holiday.jpg").write_bytes(b"\xff\xd8\xff")
        record = _wait_for(lambda: _job_record(folder, first))
        _wait_for(lambda: (folder / "rejected" / "holiday.jpg.reason").exists())
        reason = (folder / "rejected" / "broken.sigmf-collection.reason").read_text()
        assert "broken.sigmf-collection" in reason and "unreadable collection" in reason
        assert (
            "not a recording Heimdall reads"
            in (folder / "rejected" / "holiday.jpg.reason").read_text()
        )

        second = _drop(gen.next(), staging, folder)  # still watching after the bad files
        record2 = _wait_for(lambda: _job_record(folder, second))
        assert watcher.poll() is None

        entries = fleet.stream_until([record["job_id"], record2["job_id"]])
        results = {r.job_id: r for _, r in entries}
        for rec in (record, record2):
            assert results[rec["job_id"]].status == "ok"
            assert results[rec["job_id"]].method == "rss"
        assert sorted(p.name for p in folder.iterdir()) == ["done", "rejected"]
        assert len(list((folder / "done").glob("*.sigmf-data"))) == 14  # 2 sets × 7 receivers
        # each set was submitted once: one computation per job
        assert fleet.computations(record["job_id"]) == 1
    finally:
        watcher.terminate()
        output = watcher.communicate(timeout=10)[0]
    assert "submitted" in output and "rejected" in output, output
    answers = [line for line in output.splitlines() if line.startswith("result")]
    # each set's answer as it arrives (the second may come after the watcher was stopped)
    assert answers and all(": ok (rss)" in a and "ellipse" in a for a in answers), output
    assert "(done/ and rejected/ inside it)" in output


def test_the_folder_takes_what_ingest_takes_and_says_why_at_once(serving_fleet, tmp_path):
    """Loose recordings (no collection) are one set, as `ingest sigmf` takes them; a metadata
    file that is not JSON and a stray note are rejected at once, each with its reason."""
    fleet = serving_fleet
    folder, staging = tmp_path / "drop", tmp_path / "staging"
    folder.mkdir()
    scenario = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), 6)
    sc = scenario.next()
    truth = {"lat": sc.true_lat, "lon": sc.true_lon}
    written = write_job_sigmf(sc.to_job("ci16_le"), truth, staging)
    loose = sorted(p for p in staging.iterdir() if p != written)
    for path in loose:  # the recordings without their collection
        shutil.move(str(path), str(folder / path.name))
    (folder / "bad.sigmf-meta").write_text("{ this is not json")
    (folder / "bad.sigmf-data").write_bytes(bytes(4000))
    (folder / "notes.txt").write_text("recorded on the roof\n")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "ingest", "watch", str(folder),
         "--settle", "0.5", "--interval", "0.2", "--once"],
        env={**os.environ, **fleet.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    output = watcher.communicate(timeout=180)[0]
    assert watcher.returncode == 0, output
    rejected = folder / "rejected"
    assert "not a recording Heimdall reads" in (rejected / "notes.txt.reason").read_text()
    assert "the metadata is not JSON" in (rejected / "bad.sigmf-meta.reason").read_text()
    (record,) = [json.loads(p.read_text()) for p in (folder / "done").glob("*.job.json")]
    assert len(record["files"]) == len(loose)
    assert "result" in output and ": ok (rss)" in output, output


def _job_record(folder, collection_name):
    path = folder / "done" / f"{collection_name}.job.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_submit_wait_json_prints_results_as_json_lines(serving_fleet):
    done = _heimdall(serving_fleet, "submit", "--simulate", "3", "--seed", "8", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 3
    assert all(r["schema"] == "heimdall.result/1" for r in results)


def test_a_foreign_sigmf_collection_localizes_through_the_fleet(serving_fleet, tmp_path):
    from sigmfwriter import write_with_sigmf

    scenario = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), 9).next()
    collection = write_with_sigmf(tmp_path, scenario, ["ci16_le", "cf32_le"])
    done = _heimdall(
        serving_fleet, "ingest", "sigmf", str(collection), "--submit", "--wait", "--json"
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert result["status"] == "ok" and result["method"] == "rss"
    assert len(result["receivers_used"]) == 7
    assert "emission.sigmf-collection" in done.stderr  # the receivers table, for people


def _heimdall(fleet, *args: str) -> subprocess.CompletedProcess:
    """``heimdall ARGS --timeout 60`` against the test fleet, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", *args, "--timeout", "60"],
        env={**os.environ, **fleet.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_submit_simulates_gnss_timed_jobs_too(serving_fleet):
    done = _heimdall(serving_fleet, "submit", "--simulate", "2", "--kind", "tdoa",
                     "--network", "hf", "--seed", "3", "--wait", "--json")  # fmt: skip
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 2, done.stderr
    assert all(r["method"] == "tdoa" for r in results if r["status"] == "ok")
    assert done.returncode == (0 if all(r["status"] == "ok" for r in results) else 1)
