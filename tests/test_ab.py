"""A/B arms: a deterministic function of the job id whose shares follow the weights."""

from __future__ import annotations

import uuid

import pytest

from heimdall.client.ab import Split, arm_of, parse_weights


def test_2000_jobs_split_0_9_0_1_within_3_percent_and_stable():
    ids = [str(uuid.UUID(int=(k * 0x9E3779B97F4A7C15) % 2**128, version=4)) for k in range(2000)]
    arms = [arm_of(i, {"v1": 0.9, "v2": 0.1}) for i in ids]
    share = arms.count("v2") / len(arms)
    assert abs(share - 0.1) <= 0.03
    assert arms == [arm_of(i, {"v2": 0.1, "v1": 0.9}) for i in ids]  # order of the dict: no


def test_unserved_arms_are_left_out_and_no_arm_without_weights():
    split = Split({"v1": 1.0, "v2": 1.0}, 0.0, "redis")
    assert {split.arm(str(uuid.uuid4()), served={"v1", "default"}) for _ in range(50)} == {"v1"}
    assert split.arm(str(uuid.uuid4()), served={"default"}) is None
    assert arm_of("x", {}) is None and arm_of("x", {"v1": 0.0}) is None


def test_shadow_fraction_follows_its_weight():
    split = Split({"v1": 1.0}, 0.25, "settings")
    marked = sum(split.shadow(str(uuid.uuid4())) for _ in range(4000)) / 4000
    assert 0.21 < marked < 0.29


@pytest.mark.parametrize(
    "items, message",
    [(["v1"], "VERSION=WEIGHT"), (["v1=x"], "not a number"), (["v1=-1"], "≥ 0"),
     (["v1=0"], "at least one"), (["a:b=1"], "VERSION=WEIGHT"), (["v1=inf"], "finite")],
)  # fmt: skip
def test_bad_weights_are_refused_naming_the_item(items, message):
    with pytest.raises(ValueError, match=message):
        parse_weights(items)


def test_weights_parse():
    assert parse_weights(["v1=0.9", "v2=0.1"]) == {"v1": 0.9, "v2": 0.1}
