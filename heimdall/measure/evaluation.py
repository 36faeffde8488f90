"""``heimdall eval``: the model and the RSS baseline side by side on held-out simulated jobs.

Lives at the package top (like ``cli``) because it joins ``sim``, ``baseline`` and
``inference``, which must not import one another.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from heimdall.baseline.power import read_power
from heimdall.baseline.rss import localize_rss
from heimdall.harness.console import Progress, format_table
from heimdall.harness.scoring import Tally
from heimdall.inference.localizer import Localizer
from heimdall.inference.model import MANIFEST_FILE
from heimdall.schemas.errors import HeimdallError
from heimdall.sim.scenario import ScenarioGenerator, SimConfig

EVAL_SEED = 777_001  # never used for training (training seeds are recorded in manifests)


def evaluate(model_dir: Path, jobs: int, seed: int = EVAL_SEED, network: str = "reference") -> dict:
    """Run both methods on ``jobs`` scenarios; returns the summary dict (also the manifest's)."""
    localizer = Localizer(model_dir)
    sim = SimConfig(**{**localizer.manifest.training.get("simulator", {}), "network": network})
    gen = ScenarioGenerator(sim, seed=seed)
    model, baseline = Tally(), Tally()
    progress = Progress(jobs, f"eval {network}")
    for i in range(jobs):
        sc = gen.next()
        frame = sc.frame()
        truth = sc.true_enu_m(frame)
        result = localizer.localize(sc.to_job())
        if result.status == "ok":
            est = frame.to_enu(result.position.lat, result.position.lon)[:2]
            model.add(est - truth, np.array(result.covariance_en_m2))
        else:
            model.add(None, None)
        powers = np.array([read_power(x, sc.sample_rate_hz).signal_dbfs for x in sc.iq])
        try:
            rss = localize_rss(
                np.array([s.lat for s in sc.stations]),
                np.array([s.lon for s in sc.stations]),
                powers,
                frame=frame,
            )
            baseline.add(np.array([rss.east_m, rss.north_m]) - truth, rss.covariance_en_m2)
        except HeimdallError:
            baseline.add(None, None)
        progress.update(i + 1)
    both = np.isfinite(model.error_m) & np.isfinite(baseline.error_m)
    summary = {
        "eval_seed": seed,
        "network": network,
        "jobs": jobs,
        "model": model.summary(),
        "baseline_rss": baseline.summary(),
        "both_succeeded": {
            "jobs": int(both.sum()),
            "model": model.summary(both),
            "baseline_rss": baseline.summary(both),
        },
    }
    summary["median_ratio_model_to_baseline"] = (
        summary["both_succeeded"]["model"]["median_km"]
        / summary["both_succeeded"]["baseline_rss"]["median_km"]
    )
    return summary


def summary_table(summary: dict) -> str:
    """The side-by-side table people read."""
    headers = [
        "method",
        "subset",
        "jobs",
        "failed",
        "median km",
        "p90 km",
        "p95 km",
        "cov 50%",
        "cov 95%",
    ]
    rows = []
    for subset, block in [("all", summary), ("both ok", summary["both_succeeded"])]:
        for key, label in [("model", "model"), ("baseline_rss", "RSS least squares")]:
            s = block[key]
            rows.append(
                [
                    label,
                    subset,
                    s["jobs"],
                    s["failures"],
                    s["median_km"],
                    s["p90_km"],
                    s["p95_km"],
                    s["coverage_50"],
                    s["coverage_95"],
                ]
            )
    title = (
        f"{summary['network']} network, {summary['jobs']} held-out jobs, "
        f"seed {summary['eval_seed']}: median ratio model/baseline = "
        f"{summary['median_ratio_model_to_baseline']:.3f}"
    )
    return title + "\n" + format_table(headers, rows)


def record_metrics(model_dir: Path, summary: dict) -> None:
    """Store ``summary`` under ``metrics.eval_<network>`` in the manifest (ONNX untouched)."""
    path = Path(model_dir) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest.setdefault("metrics", {})[f"eval_{summary['network']}"] = summary
    path.write_text(json.dumps(manifest, indent=2) + "\n")
