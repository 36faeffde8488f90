"""The one mapping from an exception to a result error code and message."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from heimdall.schemas.errors import ErrorCode, HeimdallError
from heimdall.schemas.result import Result, Timings

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 5


def error_of(exc: BaseException) -> tuple[ErrorCode, str]:
    """``(code, message)`` for any exception raised while handling a job."""
    if isinstance(exc, ValidationError):
        return ErrorCode.INVALID_JOB, validation_message(exc)
    if isinstance(exc, HeimdallError):
        return exc.code, str(exc)
    return ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def failed_result(
    job_id: str, exc: BaseException, timings: Timings | None = None, **fields
) -> Result:
    """The ``failed`` result of ``exc``; an exception no job can cause is logged with its trace."""
    if not isinstance(exc, ValidationError | HeimdallError):
        log.error("job %s failed unexpectedly", job_id, exc_info=exc)
    code, message = error_of(exc)
    return Result.failed(job_id, code, message, timings_ms=timings or Timings(), **fields)


def validation_message(exc: ValidationError) -> str:
    """``field.path: message`` for each error, so the producer sees which field is wrong."""
    errors = exc.errors()
    parts = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = ".".join(str(p) for p in err["loc"]) or "job"
        parts.append(f"{loc}: {err['msg']}")
    more = len(errors) - MAX_LISTED_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
