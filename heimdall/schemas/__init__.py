"""Pydantic v2 contracts shared by producers, workers and consumers."""

from heimdall.schemas.errors import (
    ErrorCode,
    HeimdallError,
    InvalidJob,
    InvalidPayload,
    JobTimeout,
    ModelIntegrityError,
    NoSignal,
    PayloadMissing,
    TooFewReceivers,
    UnknownModel,
    UnsupportedFrequency,
    UnsupportedSampleRate,
)
from heimdall.schemas.job import BYTES_PER_SAMPLE, JOB_SCHEMA, Clock, IQJob, ReceiverCapture
from heimdall.schemas.manifest import ModelManifest, Preprocessing, TensorSpec
from heimdall.schemas.result import RESULT_SCHEMA, Ellipse, ErrorInfo, Position, Result, Timings

__all__ = [
    "BYTES_PER_SAMPLE",
    "JOB_SCHEMA",
    "RESULT_SCHEMA",
    "Clock",
    "Ellipse",
    "ErrorCode",
    "ErrorInfo",
    "HeimdallError",
    "IQJob",
    "InvalidJob",
    "InvalidPayload",
    "JobTimeout",
    "ModelIntegrityError",
    "ModelManifest",
    "NoSignal",
    "PayloadMissing",
    "Position",
    "Preprocessing",
    "ReceiverCapture",
    "Result",
    "TensorSpec",
    "Timings",
    "TooFewReceivers",
    "UnknownModel",
    "UnsupportedFrequency",
    "UnsupportedSampleRate",
]
