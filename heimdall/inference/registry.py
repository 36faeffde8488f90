"""The model versions one process serves, each with its own verified Localizer."""

from __future__ import annotations

from pathlib import Path

from heimdall.inference.localizer import Localizer
from heimdall.schemas.errors import UnknownModel


class ModelRegistry:
    """Maps a job's ``model`` field ("default" or a version) to a loaded :class:`Localizer`."""

    def __init__(
        self,
        models_dir: Path,
        default: str,
        extra: list[str] | None = None,
        worker_name: str | None = None,
    ) -> None:
        self.default = default
        versions = list(dict.fromkeys([default, *(extra or [])]))
        self.localizers = {
            v: Localizer(Path(models_dir) / v, worker_name=worker_name) for v in versions
        }

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
