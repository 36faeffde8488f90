"""The one place configuration is read from the environment (prefix ``HEIMDALL_``)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# DESIGN §3: 16 receivers × 2 000 000 samples; config imports nothing of the package.
MAX_JOB_SAMPLES = 32_000_000

REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


class Settings(BaseSettings):
    """Every URL, name, limit and TTL the fleet uses; ``HEIMDALL_<FIELD>`` overrides each."""

    model_config = SettingsConfigDict(env_prefix="HEIMDALL_", extra="ignore")

    # Services
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = Field(None, description="default: redis_url")
    result_backend_url: str | None = Field(None, description="default: redis_url")
    key_prefix: str = Field("heimdall", pattern=r"^[A-Za-z0-9_.:-]+$")

    # Retention
    blob_ttl_s: int = Field(3600, gt=0)
    result_ttl_s: int = Field(86_400, gt=0)
    stream_maxlen: int = Field(100_000, gt=0)

    # Models
    models_dir: Path = REPO_MODELS_DIR
    default_model: str = "v1"
    serve_models: list[str] = Field(
        default_factory=list, description="extra versions a worker loads beside the default"
    )

    # Model lifecycle (DESIGN §12)
    ab_split: dict[str, float] = Field(
        default_factory=dict,
        description='{version: weight} for "default" jobs; a split set by `heimdall ab set` wins',
    )
    ab_shadow_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="share of A/B jobs also scored by the other arms"
    )
    cache_enabled: bool = Field(True, description="answer a resubmitted recording from Redis")
    cache_ttl_s: int = Field(3600, gt=0)
    batch_ttl_s: int = Field(7 * 86_400, gt=0, description="batch records kept this long")

    # Delivery (DESIGN §8): soft < hard < visibility timeout
    soft_time_limit_s: float = Field(60.0, gt=0)
    hard_time_limit_s: float = Field(90.0, gt=0)
    visibility_timeout_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(
        3, ge=1, description="times a job may be taken by a worker; then failed, code internal"
    )
    busy_retry_s: float = Field(
        2.0, gt=0, description="a job claimed by another child is looked at again after this"
    )
    pack_max_jobs: int = Field(
        16,
        ge=1,
        le=64,
        description="bulk jobs a producer submits together share a message, up to this many "
        "(one ONNX call for them); 1 sends every job alone",
    )

    # Input bounds (DESIGN §3, §8.12, §8.14)
    max_job_samples: int = Field(
        MAX_JOB_SAMPLES,
        ge=1,
        le=MAX_JOB_SAMPLES,
        description="samples over all receivers of one job; larger jobs fail with invalid_job",
    )
    max_message_bytes: int = Field(
        64 * 2**20, gt=0, description="a queue message larger than this is a dead letter"
    )
    dead_letters_max: int = Field(10_000, gt=0, description="dead letters kept (oldest dropped)")

    # Workers
    advertise_interval_s: float = Field(
        30.0, gt=0, description="how often a node re-announces the versions it serves"
    )
    concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    # Prometheus: each worker node serves /metrics (multiprocess mode) on this port
    metrics_port: int | None = Field(9808, description="off (or empty) disables the exporter")
    metrics_address: str = Field(
        "127.0.0.1", description="bind /metrics /healthz /readyz here (0.0.0.0: every interface)"
    )
    metrics_dir: Path | None = Field(None, description="default: a fresh temp dir per node")

    # `heimdall map`: Leaflet from its npm package (scripts/bootstrap puts it there)
    map_assets_dir: Path = REPO_MODELS_DIR.parent / ".web"
    map_tiles_url: str | None = Field(
        None,
        description="base tiles, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; "
        "none: the map draws on a blank background (offline)",
    )
    map_port: int = 8088

    # Flower
    flower_port: int = 5555
    flower_user: str = "heimdall"
    flower_password: str | None = Field(
        None,
        description="required by `heimdall flower`; no default (the fleet's tasks and "
        "control commands are behind it)",
    )

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _metrics_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "no"):
            return None
        return value

    @model_validator(mode="after")
    def _limits_ordered(self) -> Settings:
        if not self.soft_time_limit_s < self.hard_time_limit_s < self.visibility_timeout_s:
            raise ValueError(
                "need soft_time_limit_s < hard_time_limit_s < visibility_timeout_s, got "
                f"{self.soft_time_limit_s} / {self.hard_time_limit_s} / {self.visibility_timeout_s}"
            )
        return self

    def as_env(self) -> dict[str, str]:
        """These settings as the ``HEIMDALL_*`` environment that makes another process (a
        ``heimdall worker`` node) read the same ones: every field that is set, in the form
        this class parses (JSON for lists and maps; ``off`` for disabled metrics)."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            key = f"HEIMDALL_{name.upper()}"
            if value is None:
                if name == "metrics_port":
                    env[key] = "off"
                continue
            if isinstance(value, list | dict):
                env[key] = json.dumps(value)
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            else:
                env[key] = str(value)
        return env

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_is_redis(self) -> bool:
        return self.broker.startswith(("redis://", "rediss://"))

    @property
    def broker_is_rabbitmq(self) -> bool:
        return self.broker.startswith(("amqp://", "amqps://", "pyamqp://"))

    @property
    def result_backend(self) -> str:
        return self.result_backend_url or self.redis_url

    @property
    def results_channel(self) -> str:
        return f"{self.key_prefix}:results"

    @property
    def results_stream(self) -> str:
        return f"{self.key_prefix}:results:stream"

    def blob_key(self, job_id: str, index: int) -> str:
        return f"{self.key_prefix}:iq:{job_id}:{index}"

    def job_key(self, job_id: str, what: str) -> str:
        """Per-job bookkeeping keys: ``claim``, ``attempts``, ``published``."""
        return f"{self.key_prefix}:job:{job_id}:{what}"

    @property
    def dead_letters_key(self) -> str:
        """List of messages no worker could use (newest first), JSON each."""
        return f"{self.key_prefix}:dead-letters"

    @property
    def served_by_key(self) -> str:
        """Hash node → JSON ``{"versions": [...], "at": unix s}``: what each worker node serves
        now, as it last said (at start, every ``advertise_interval_s`` and at once on reload)."""
        return f"{self.key_prefix}:served-by"

    @property
    def serving_key(self) -> str:
        """Hash child → JSON of what it serves (node, versions, generation, last error)."""
        return f"{self.key_prefix}:serving"

    @property
    def session_loads_key(self) -> str:
        return f"{self.key_prefix}:session-loads"

    def cache_key(self, digest: str) -> str:
        return f"{self.key_prefix}:cache:{digest}"

    @property
    def ab_split_key(self) -> str:
        """Hash version → weight: the run-time A/B split producers read (wins over Settings)."""
        return f"{self.key_prefix}:ab:split"

    @property
    def ab_shadow_key(self) -> str:
        """Stream of shadow scores: one job's estimates by two arms and their distance."""
        return f"{self.key_prefix}:ab:shadow"

    def batch_key(self, batch_id: str) -> str:
        """Hash of one batch: total, ended, counts by status and by code, summary."""
        return f"{self.key_prefix}:batch:{batch_id}"

    def queue(self, priority: str, model: str = "default") -> str:
        """Queue of a job: one per priority, and per version when it asks for a specific one."""
        base = f"{self.key_prefix}.jobs.{priority}"
        if model in ("default", self.default_model):
            return base
        return f"{base}.{model}"

    def worker_queues(self, versions: list[str] | None = None) -> list[str]:
        """Queues a worker serving ``versions`` (default model first) consumes."""
        versions = versions or [self.default_model, *self.serve_models]
        queues = []
        for priority in ("interactive", "bulk"):
            for version in versions:
                queues.append(self.queue(priority, version))
        return list(dict.fromkeys(queues))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``**`` (for messages and logs)."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)
