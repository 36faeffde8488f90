"""``heimdall map`` in a real headless Chromium (Debian's ``chromium``): the static page from a
results file, opened from disk with no network, and the live page following a real fleet's
results as they arrive. Screenshots are kept in ``artifacts/`` (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from heimdall.harness.redis_server import free_port
from heimdall.sim import ScenarioGenerator, SimConfig
from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "CI needs Debian's chromium for the map tests (scripts/test installs it)"
        )
    pytest.skip("no chromium (scripts/test installs Debian's package)", allow_module_level=True)


def _chromium(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
         "--window-size=1200,800", *extra, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _drawn(url: str, screenshot: str) -> dict:
    dom = _chromium(url, "--dump-dom")
    shot = _chromium(url, f"--screenshot={ARTIFACTS / screenshot}")
    console = [
        line for line in dom.stderr.splitlines() + shot.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)
    ]  # fmt: skip
    page = dom.stdout
    return {
        "ellipses": len(re.findall(r'<path[^>]*class="[^"]*heimdall-ellipse', page)),
        "hyperbolae": len(re.findall(r'<path[^>]*class="[^"]*heimdall-hyperbola', page)),
        "rows": len(re.findall(r'<tr class="(ok|failed)"', page)),
        "land": len(re.findall(r'<path[^>]*class="[^"]*heimdall-land', page)),
        "borders": len(re.findall(r'<path[^>]*class="[^"]*heimdall-border', page)),
        "scale": "leaflet-control-scale" in page,
        "legend": len(re.findall(r'class="[^"]*heimdall-legend', page)),
        "errors": re.search(r'<pre id="errors">([^<]*)</pre>', page).group(1),
        "console": console,
    }


def _heimdall(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heimdall.cli", *argv], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_static_page_opens_from_a_file_with_no_network(localizer, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=21)
    results = [localizer.localize(gen.next().to_job(job_id=str(uuid.uuid4()))) for _ in range(4)]
    timed = TdoaScenarioGenerator(TdoaSimConfig(), seed=2).next(kind="nfm")
    results.append(localizer.localize(timed.job.model_copy(update={"method": "tdoa"})))
    few = gen.next().to_job(job_id=str(uuid.uuid4()))
    results.append(localizer.localize(few.model_copy(update={"receivers": few.receivers[:2]})))
    assert [r.status for r in results] == ["ok"] * 5 + ["failed"]
    source = tmp_path / "results.jsonl"
    source.write_text("".join(r.to_json() + "\n" for r in results))
    page = tmp_path / "map.html"
    done = _heimdall("map", "--out", str(page), str(source), env={})
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    fetches = re.findall(r'<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=\s*["\'][a-z]+:', html)
    assert not fetches  # nothing to fetch: Leaflet inlined, no tiles configured
    drawn = _drawn(page.as_uri(), "map-static.png")
    assert drawn["ellipses"] == 5 and drawn["rows"] == 6
    assert drawn["hyperbolae"] >= 15  # the TDoA fix's pairs (21, a few without a branch)
    # offline, without tiles: Natural Earth's land and borders, a scale bar and a legend
    assert drawn["land"] >= 1 and drawn["borders"] >= 1
    assert drawn["scale"] and drawn["legend"] == 1
    assert drawn["errors"] == "" and drawn["console"] == []


def test_live_page_follows_a_fleet_run_as_results_arrive(serving_fleet):
    fleet = serving_fleet
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "map", "--port", str(port)],
        env={**os.environ, **fleet.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "map server did not start"
                time.sleep(0.1)
        gen = ScenarioGenerator(SimConfig(network="reference", missing_probability=0.0), seed=33)
        jobs = [gen.next().to_job(job_id=str(uuid.uuid4())) for _ in range(20)]
        before = {r.job_id for _, r in fleet.feed.read_stream("0-0")}
        first = [h.result(60) for h in fleet.producer.submit_many(jobs[:10])]
        ok_first = sum(r.status == "ok" for r in first)
        drawn = _drawn(f"http://127.0.0.1:{port}/", "map-live-10.png")
        assert drawn["rows"] == len(before) + 10
        assert drawn["ellipses"] >= ok_first and drawn["console"] == []
        second = [h.result(60) for h in fleet.producer.submit_many(jobs[10:])]
        drawn = _drawn(f"http://127.0.0.1:{port}/", "map-live-20.png")
        assert drawn["rows"] == len(before) + 20
        assert drawn["ellipses"] >= ok_first + sum(r.status == "ok" for r in second)
        assert drawn["land"] >= 1 and drawn["borders"] >= 1 and drawn["scale"]
        assert drawn["errors"] == "" and drawn["console"] == []
    finally:
        server.terminate()
        server.wait(10)


def test_map_without_leaflet_says_how_to_get_it(tmp_path):
    done = _heimdall("map", "--out", str(tmp_path / "x.html"),
                     env={"HEIMDALL_MAP_ASSETS_DIR": str(tmp_path)})  # fmt: skip
    assert done.returncode == 2 and "scripts/bootstrap" in done.stderr
