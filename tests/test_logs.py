"""Log hygiene: a job's base64 IQ never reaches a log line, in messages or tracebacks."""

import base64
import logging

import numpy as np

from heimdall.workers.logs import RedactIQ


def test_base64_runs_are_elided_from_messages_and_tracebacks():
    iq = base64.b64encode(np.random.default_rng(1).bytes(3000)).decode()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "job %s failed: %r", None, None)
    record.args = ("abc", {"iq_b64": iq})
    try:
        raise ValueError(f"bad job {iq}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactIQ().filter(record)
    text = logging.Formatter().format(record)
    assert iq[:300] not in text and "base64 chars elided" in text
    assert "job abc failed" in text and "ValueError: bad job" in text


def test_short_strings_are_left_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job %s", ("a" * 150,), None)
    RedactIQ().filter(record)
    assert record.getMessage() == "job " + "a" * 150
