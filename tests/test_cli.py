"""The command line: tables for people, and bad input named by file, line and field."""

import json

import pytest

from heimdall.cli import main


@pytest.fixture
def jobs_file(tmp_path):
    path = tmp_path / "jobs.jsonl"
    assert main(["simulate", "--jobs", "3", "--seed", "4", "--out", str(path)]) == 0
    return path


def test_simulate_then_localize_prints_a_table(jobs_file, capsys):
    records = [json.loads(line) for line in jobs_file.read_text().splitlines()]
    assert len(records) == 3 and {"job", "truth"} <= records[0].keys()
    assert main(["localize", str(jobs_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["job", "status"]
    rows = out[2:]
    assert len(rows) == 3 and all(" ok " in row for row in rows)
    assert records[0]["job"]["job_id"][:8] in rows[0]


def test_localize_names_a_bad_line(jobs_file):
    lines = jobs_file.read_text().splitlines()
    jobs_file.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(SystemExit, match=r"jobs.jsonl:2: not JSON"):
        main(["localize", str(jobs_file)])


def test_submit_names_the_invalid_field_before_touching_redis(jobs_file, capsys):
    records = [json.loads(line) for line in jobs_file.read_text().splitlines()]
    records[1]["job"]["receivers"][0]["lat"] = 123.0
    jobs_file.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["submit", "--file", str(jobs_file)]) == 2
    err = capsys.readouterr().err
    assert "job 2" in err and "receivers.0.lat" in err


def test_unknown_subcommand_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_model_is_a_message_not_a_traceback(jobs_file, capsys):
    assert main(["localize", str(jobs_file), "--model", "v404"]) == 2
    assert "model refused" in capsys.readouterr().err


def test_unreachable_redis_is_named(monkeypatch, capsys):
    from heimdall.config import get_settings

    monkeypatch.setenv("HEIMDALL_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    try:
        assert main(["status", "--timeout", "0.2"]) == 2
    finally:
        get_settings.cache_clear()
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in capsys.readouterr().err


def test_invalid_setting_is_named(monkeypatch, capsys):
    from heimdall.config import get_settings

    monkeypatch.setenv("HEIMDALL_BLOB_TTL_S", "-5")
    get_settings.cache_clear()
    try:
        assert main(["status"]) == 2
    finally:
        get_settings.cache_clear()
    assert "blob_ttl_s" in capsys.readouterr().err


def test_localize_json_prints_one_result_per_line(jobs_file, capsys):
    from heimdall.schemas import Result

    assert main(["localize", str(jobs_file), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    results = [json.loads(line) for line in lines]  # plain JSON, no table around it
    assert all(r["schema"] == "heimdall.result/1" and r["status"] == "ok" for r in results)
    assert Result.model_validate(results[0]).method == "rss"


def test_ingest_kiwi_writes_gnss_timed_jobs_that_only_time_differences_serve(tmp_path, capsys):
    from kiwiwav import KiwiWavSpec, kiwi_name, write_kiwi_wav

    t0_ns = 1_795_000_000_123_456_789
    for k, station in enumerate(["AA1", "BB2", "CC3"]):
        spec = KiwiWavSpec(t0_ns + k * 1_000_000, blocks=60, stale_first=1, seed=k)
        write_kiwi_wav(tmp_path / kiwi_name(t0_ns, 7_100_000, station), spec)
    (tmp_path / kiwi_name(t0_ns, 7_100_000, "BAD")).write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    out = tmp_path / "jobs.jsonl"
    stations = ["--station", "AA1=45,7", "--station", "BB2=45.5,8", "--station", "CC3=44.8,8.5"]
    code = main(["ingest", "kiwi", *map(str, sorted(tmp_path.glob("*.wav"))), *stations,
                 "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1  # a job was made, and one file was refused
    assert "BAD_iq.wav" in captured.out and "'fmt '" in captured.out  # refused, with where
    assert "AA1" in captured.out and "gnss" in captured.out and "stale stamps" in captured.out
    (line,) = out.read_text().splitlines()
    job = json.loads(line)
    assert [r["receiver_id"] for r in job["receivers"]] == ["AA1", "BB2", "CC3"]
    assert all(r["clock"]["source"] == "gnss" and r["time_ns"] > t0_ns for r in job["receivers"])
    assert main(["localize", str(out), "--json"]) == 1
    # HF: outside the RSS band, so TDoA only; and these files hold a bare 1 kHz tone, whose
    # phase carries no delay: no position, said so (tests/test_carriers.py has the fixes)
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed" and result["error"]["code"] == "no_signal"
    assert "carrier" in result["error"]["message"]
    rss_only = tmp_path / "rss.jsonl"
    main(["ingest", "kiwi", *map(str, sorted(tmp_path.glob("*.wav"))), *stations,
          "--method", "rss", "--out", str(rss_only)])  # fmt: skip
    capsys.readouterr()
    assert main(["localize", str(rss_only), "--json"]) == 1  # a job failed
    result = json.loads(capsys.readouterr().out)  # asked for RSS on HF: refused, not guessed
    assert result["status"] == "failed" and result["error"]["code"] == "unsupported_frequency"


def test_localize_exits_non_zero_when_jobs_fail(jobs_file, capsys):
    records = [json.loads(line) for line in jobs_file.read_text().splitlines()]
    records[0]["job"]["receivers"] = records[0]["job"]["receivers"][:2]  # too_few_receivers
    jobs_file.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["localize", str(jobs_file)]) == 1
    captured = capsys.readouterr()
    assert "too_few_receivers" in captured.out
    assert "1 of 3 jobs failed" in captured.err


def test_bare_submit_prints_usage_and_sends_nothing(capsys):
    with pytest.raises(SystemExit) as info:
        main(["submit"])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "one of the arguments JOBS.jsonl --file --simulate is required" in error


def test_meaningless_flag_combinations_are_refused(jobs_file, tmp_path, capsys):
    assert main(["submit", "--file", str(jobs_file), "--json"]) == 2
    assert "--json shows results, so it needs --wait" in capsys.readouterr().err
    assert main(["ingest", "sigmf", str(tmp_path), "--wait"]) == 2
    assert "add --submit" in capsys.readouterr().err


def test_ingest_of_one_recording_warns_it_cannot_be_localized(tmp_path, capsys):
    from sigmfwriter import write_with_sigmf

    from heimdall.sim import ScenarioGenerator, SimConfig

    scenario = ScenarioGenerator(SimConfig(network="reference"), seed=3).next()
    write_with_sigmf(tmp_path, scenario, ["cf32_le"])
    assert main(["ingest", "sigmf", str(tmp_path / "rx0.sigmf-meta")]) == 0
    out = capsys.readouterr().out
    assert "1 receiver(s); a position needs at least 3" in out


def test_every_verbs_help_starts_with_a_description(capsys):
    import re

    from heimdall.cli import build_parser

    usage = build_parser().format_usage()
    verbs = re.search(r"\{([a-z,-]+)\}", usage).group(1).split(",")
    assert len(verbs) >= 20
    for verb in verbs:
        with pytest.raises(SystemExit) as info:
            main([verb, "-h"])
        assert info.value.code == 0
        lines = capsys.readouterr().out.splitlines()
        description = lines[lines.index("") + 1] if "" in lines else ""
        assert description and not description.startswith(("options", "positional")), verb


def test_localize_method_overrides_each_jobs_own(jobs_file, capsys):
    assert main(["localize", str(jobs_file), "--method", "tdoa", "--json"]) == 1
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # simulated RSS jobs carry no GNSS time: asked for time differences, each says so
    assert {r["error"]["code"] for r in results} == {"no_common_time"}


def test_simulators_refuse_a_network_they_do_not_have(tmp_path, capsys):
    assert main(["simulate", "--network", "hf", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "(hf: with --kind tdoa)" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
    assert main(["submit", "--simulate", "1", "--network", "mixed", "--kind", "tdoa"]) == 2
    assert "the tdoa simulator has" in capsys.readouterr().err


def test_submit_takes_a_jobs_file_as_localize_does(jobs_file, capsys):
    records = [json.loads(line) for line in jobs_file.read_text().splitlines()]
    records[0]["job"]["receivers"][0]["lat"] = 123.0
    jobs_file.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["submit", str(jobs_file)]) == 2  # refused before anything is sent
    assert "job 1" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["0", "-5", "30s"])
def test_eval_refuses_a_capture_length_that_is_not_a_positive_count(given, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "--method", "tdoa", "--samples", given])
    assert info.value.code == 2
    assert f"argument --samples: expected a whole number above 0, got '{given}'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--samples", "360000"], "--samples"),
        (["--signal", "am-voice", "--multipath", "none"], "--signal --multipath"),
        (["--method", "tdoa", "--record"], "--record"),
    ],
)
def test_eval_refuses_an_option_the_chosen_eval_would_ignore(argv, named, capsys):
    """Without --method the RSS eval runs: a figure from it is not one of 30 s captures."""
    assert main(["eval", "--jobs", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("heimdall eval: ") and named in err


def test_eval_by_time_reports_the_other_crossing_beside_the_estimate(capsys):
    """Truth in the 95 % ellipse or an alternative's can only add to truth in the estimate's."""
    assert main(["eval", "--method", "tdoa", "--network", "random", "--signal", "nfm",
                 "--jobs", "4", "--samples", "20000"]) == 0  # fmt: skip
    header, _, row = capsys.readouterr().out.strip().splitlines()

    def value(column: str) -> float:  # the table is left-aligned under its headers
        return float(row[header.index(column):].split()[0])

    assert 0.0 <= value("in 95%") <= value("95% or alt") <= 1.0
