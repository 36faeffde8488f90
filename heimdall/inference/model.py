"""A model directory (``model.onnx`` + ``manifest.json``), verified before anything serves it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from heimdall.schemas.errors import ModelIntegrityError
from heimdall.schemas.manifest import ModelManifest, file_sha256

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelFiles:
    directory: Path
    manifest: ModelManifest

    @property
    def onnx_path(self) -> Path:
        return self.directory / self.manifest.onnx_file


def load_model_files(model_dir: str | Path) -> ModelFiles:
    """Read the manifest and check the ONNX file's sha256 against it."""
    directory = Path(model_dir)
    manifest_path = directory / MANIFEST_FILE
    try:
        raw = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"{manifest_path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"{manifest_path} is not valid JSON: {exc}") from exc
    try:
        manifest = ModelManifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelIntegrityError(f"{manifest_path} is not a valid manifest: {exc}") from exc
    files = ModelFiles(directory, manifest)
    if not files.onnx_path.is_file():
        raise ModelIntegrityError(f"{files.onnx_path} does not exist")
    actual = file_sha256(files.onnx_path)
    if actual != manifest.onnx_sha256:
        raise ModelIntegrityError(
            f"{files.onnx_path} has sha256 {actual}, manifest says {manifest.onnx_sha256}"
        )
    return files
