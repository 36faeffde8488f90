"""Error codes of ``heimdall.result/1`` and the typed exceptions that carry them.

Every failure the numerics can detect is raised as a subclass of :class:`HeimdallError`;
its ``code`` is the single mapping from exception to result error code.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_JOB = "invalid_job"
    INVALID_PAYLOAD = "invalid_payload"
    PAYLOAD_MISSING = "payload_missing"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    TOO_FEW_RECEIVERS = "too_few_receivers"
    UNKNOWN_MODEL = "unknown_model"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    NO_COMMON_TIME = "no_common_time"
    NO_SIGNAL = "no_signal"
    UNSUPPORTED_FREQUENCY = "unsupported_frequency"


class HeimdallError(Exception):
    """Base of every error that becomes a ``failed`` result with a code."""

    code: ErrorCode = ErrorCode.INTERNAL


class InvalidJob(HeimdallError):
    code = ErrorCode.INVALID_JOB


class InvalidPayload(HeimdallError):
    code = ErrorCode.INVALID_PAYLOAD


class PayloadMissing(HeimdallError):
    code = ErrorCode.PAYLOAD_MISSING


class UnsupportedSampleRate(HeimdallError):
    code = ErrorCode.UNSUPPORTED_SAMPLE_RATE


class TooFewReceivers(HeimdallError):
    code = ErrorCode.TOO_FEW_RECEIVERS


class UnknownModel(HeimdallError):
    code = ErrorCode.UNKNOWN_MODEL


class JobTimeout(HeimdallError):
    code = ErrorCode.TIMEOUT


class NoSignal(HeimdallError):
    """Nothing stands above the noise at enough receivers: an empty job is not a position."""

    code = ErrorCode.NO_SIGNAL


class NoCommonTime(HeimdallError):
    """TDoA asked for, but fewer than 3 GNSS-timed captures overlap long enough."""

    code = ErrorCode.NO_COMMON_TIME


class UnsupportedFrequency(HeimdallError):
    """The job's frequency lies outside every band a method of this fleet can use."""

    code = ErrorCode.UNSUPPORTED_FREQUENCY


class ModelIntegrityError(Exception):
    """A model directory whose manifest disagrees with its ONNX file; a worker must not start."""
