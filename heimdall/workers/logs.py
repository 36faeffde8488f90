"""Log hygiene of a worker node: no job's IQ ever reaches a log line (DESIGN §8.11).

A job sent inline carries its IQ as base64 (hundreds of kB); Celery and our own handlers may
log a job's repr or an exception quoting it. :class:`RedactIQ`, installed on every handler of
the node, replaces each run of ``MIN_RUN_CHARS`` or more base64 characters in a record's
message and traceback with a short marker.
"""

from __future__ import annotations

import logging
import re

from celery import signals

MIN_RUN_CHARS = 200
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/]{{{MIN_RUN_CHARS},}}={{0,2}}")


def redact(text: str) -> str:
    return _BASE64_RUN.sub(lambda m: f"<{len(m.group())} base64 chars elided>", text)


class RedactIQ(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (default: root), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactIQ) for f in handler.filters):
            handler.addFilter(RedactIQ())


@signals.after_setup_logger.connect
def after_setup_logger(logger: logging.Logger | None = None, **_: object) -> None:
    install(logger)


@signals.after_setup_task_logger.connect
def after_setup_task_logger(logger: logging.Logger | None = None, **_: object) -> None:
    install(logger)
