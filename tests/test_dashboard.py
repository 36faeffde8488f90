"""The Grafana dashboard queries exactly the metric names DESIGN §13 lists (and nothing else)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "heimdall.json"
DESIGN_13 = {
    "heimdall_jobs_total", "heimdall_job_stage_seconds", "heimdall_cache_hits_total",
    "heimdall_cache_misses_total", "heimdall_model_reloads_total", "heimdall_queue_length",
    "heimdall_ellipse_semi_major_meters", "heimdall_dead_letters_total",
    "heimdall_jobs_in_progress", "heimdall_worker_up",
}  # fmt: skip


def test_dashboard_uses_exactly_the_design_metric_names():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for e in exprs
        for name in re.findall(r"heimdall_[a-z_]+", e)
    }
    assert used == DESIGN_13
