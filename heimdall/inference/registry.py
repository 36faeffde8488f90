"""The model versions one process serves, each with its own verified Localizer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self

from heimdall.inference.localizer import Localizer
from heimdall.schemas.errors import UnknownModel
from heimdall.schemas.job import MAX_JOB_SAMPLES


class ServingSettings(Protocol):
    models_dir: Path
    default_model: str
    serve_models: list[str]
    max_job_samples: int


class ModelRegistry:
    """Maps a job's ``model`` field ("default" or a version) to a loaded :class:`Localizer`."""

    def __init__(
        self,
        models_dir: Path,
        default: str,
        extra: list[str] | None = None,
        worker_name: str | None = None,
        max_job_samples: int = MAX_JOB_SAMPLES,
    ) -> None:
        self.default = default
        versions = list(dict.fromkeys([default, *(extra or [])]))
        self.localizers = {
            v: Localizer(
                Path(models_dir) / v, worker_name=worker_name, max_job_samples=max_job_samples
            )
            for v in versions
        }

    @classmethod
    def for_settings(cls, settings: ServingSettings, worker_name: str | None = None) -> Self:
        """The registry a worker process serves with ``settings`` (a ``heimdall.config``
        ``Settings``; inference does not import config)."""
        return cls(
            settings.models_dir,
            settings.default_model,
            settings.serve_models,
            worker_name,
            settings.max_job_samples,
        )

    @property
    def versions(self) -> list[str]:
        return list(self.localizers)

    def for_model(self, model: str) -> Localizer:
        version = self.default if model == "default" else model
        try:
            return self.localizers[version]
        except KeyError:
            raise UnknownModel(
                f"model {model!r} is not served by this worker (serves {self.versions})"
            ) from None


_process_registry: ModelRegistry | None = None


def install_registry(registry: ModelRegistry | None) -> None:
    """Make ``registry`` this process's models (a worker child does this once after fork)."""
    global _process_registry
    _process_registry = registry


def process_registry() -> ModelRegistry | None:
    """This process's models, or None if nothing installed them."""
    return _process_registry
