"""Settings: one class, limits checked, names derived from the prefix."""

import pytest
from pydantic import ValidationError

from heimdall.config import Settings, celery_config


def test_time_limits_must_be_ordered():
    with pytest.raises(ValidationError, match="soft_time_limit_s < hard_time_limit_s"):
        Settings(soft_time_limit_s=100, hard_time_limit_s=90)
    with pytest.raises(ValidationError, match="visibility_timeout_s"):
        Settings(hard_time_limit_s=400, visibility_timeout_s=300)


def test_metrics_can_be_switched_off():
    assert Settings(metrics_port="off").metrics_port is None
    assert Settings(metrics_port="9100").metrics_port == 9100


def test_names_follow_the_prefix():
    s = Settings(key_prefix="t1")
    assert s.blob_key("j", 2) == "t1:iq:j:2"
    assert (s.results_channel, s.results_stream) == ("t1:results", "t1:results:stream")
    assert s.queue("bulk") == "t1.jobs.bulk"
    assert s.queue("interactive", "v9") == "t1.jobs.interactive.v9"
    assert s.queue("interactive", s.default_model) == "t1.jobs.interactive"


def test_celery_rules():
    conf = celery_config(
        Settings(soft_time_limit_s=10, hard_time_limit_s=20, visibility_timeout_s=30)
    )
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and "pickle" not in conf["result_accept_content"]
    broker_vt = conf["broker_transport_options"]["visibility_timeout"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"] < broker_vt
    assert broker_vt == conf["result_backend_transport_options"]["visibility_timeout"]
    assert conf["worker_send_task_events"] and not conf.get("task_track_started")


def test_settings_as_environment_read_back_are_the_same(monkeypatch):
    """What a harness hands a worker node: every field, read back by the node's Settings()."""
    chosen = Settings(
        key_prefix="t-env", metrics_port=None, serve_models=["v2"], ab_split={"v1": 0.7},
        cache_enabled=False, soft_time_limit_s=5.5, hard_time_limit_s=9, visibility_timeout_s=30,
    )  # fmt: skip
    for key, value in chosen.as_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == chosen
