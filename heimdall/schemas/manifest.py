"""The model manifest: what an ONNX file expects, how it was trained and how well it does."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Preprocessing(BaseModel):
    """Every parameter of the DESIGN §5 feature pipeline; identical in training and serving."""

    model_config = ConfigDict(extra="forbid")

    sample_rate_hz: float = Field(gt=0)
    n_fft: int = Field(gt=0)
    hop: int = Field(gt=0)
    n_mels: int = Field(gt=0)
    window: str = "hann_periodic"
    fmin_hz: float = 0.0
    htk: bool = False
    mel_norm: str | None = None
    log_floor: float = 1e-12
    mean_db: float
    std_db: float = Field(gt=0)


class TensorSpec(BaseModel):
    name: str
    dtype: str
    shape: list[str | int]


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    onnx_file: str = "model.onnx"
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: str
    preprocessing: Preprocessing
    position_scale_m: float = Field(gt=0)
    max_receivers: int = Field(gt=0)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    frequency_range_hz: tuple[float, float] | None = Field(
        None, description="band of the training data; RSS is not offered outside it (None: any)"
    )
    covariance_scale: float = Field(
        1.0, gt=0, description="variance calibration factor already folded into cov_chol"
    )
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
