"""The chaos run, short: every accepted job ends in exactly one published result.

Long version: ``heimdall chaos --jobs 1000`` (prints the audit table).
"""

import pytest

from heimdall.measure.chaos import ChaosPlan, ChaosRun

pytestmark = pytest.mark.slow


def test_no_job_lost_or_published_twice_under_chaos():
    audit = ChaosRun(ChaosPlan(jobs=200, settle_timeout_s=150)).run()
    print(audit.table())
    assert audit.passed, (audit.table(), audit.whereabouts, audit.events, audit.log_dir)
    assert audit.accepted == 200
    assert audit.children_killed_mid_job >= 1
    assert audit.main_processes_killed == 1 and audit.warm_shutdowns == 1
    assert audit.redis_restarts == 1
    assert audit.dead_letters == 0
    assert audit.statuses["ok"] >= 190
