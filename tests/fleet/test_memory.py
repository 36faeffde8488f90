"""Bounded memory (DESIGN §8.14): the largest job the contract allows, in a real worker child."""

import pytest

from heimdall.measure.memory import measure

pytestmark = pytest.mark.slow

GIB = 2**30


def test_largest_allowed_job_stays_within_the_memory_bound():
    report = measure(receivers=16, samples=2_000_000)
    assert report.status == "ok", report.error
    assert report.iq_bytes == 16 * 2_000_000 * 8
    assert report.peak_rss_bytes <= 1.2 * GIB, report.table()
    assert report.job_cost_bytes <= 4 * report.iq_bytes


def test_job_over_a_lowered_cap_is_refused():
    report = measure(receivers=4, samples=300_000, max_job_samples=1_000_000)
    assert report.status == "failed" and report.error == "invalid_job"
    # refused before decoding: the child's peak did not move by the job's 9 MiB of IQ
    assert report.job_cost_bytes < report.iq_bytes
