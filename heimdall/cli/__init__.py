"""The ``heimdall`` command: one module per verb or verb family, each holding its parser and
its handler (``add_parser(sub)``, like ``celery/bin``); this module only registers them and runs
the chosen one, turning the errors every verb can meet into one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from heimdall.cli import (
    acquire,
    bench,
    chaos,
    deadletters,
    demo,
    emulate,
    evaluate,
    flower,
    ingest,
    lifecycle,
    localize,
    memory,
    picture,
    simulate,
    status,
    submit,
    train,
    watch,
    worker,
)
from heimdall.cli import map as map_page
from heimdall.config import get_settings, redacted_url

# In the order `heimdall --help` lists them: running the fleet, feeding it, operating it,
# measuring it, then models.
VERBS = (
    worker, submit, ingest, acquire, emulate, watch, status, lifecycle, deadletters, flower,
    map_page, demo, localize, simulate, bench, chaos, memory, evaluate, picture, train,
)  # fmt: skip


class _Help(argparse.HelpFormatter):
    """Option help with its default, where there is one worth saying (not None, off, or a
    default the help text already names)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = (None, False, argparse.SUPPRESS)
        if action.default in quiet or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Verbs:
    """argparse's sub-command action, each verb's ``-h`` starting with its one-line help and
    showing its options' defaults."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        kwargs.setdefault("formatter_class", _Help)
        return self.sub.add_parser(name, **kwargs)


GROUPS = """verbs by what they are for:
  run a fleet     worker, status, flower, map, demo
  send jobs       submit, ingest (recordings, drop folder), acquire (live KiwiSDR receivers),
                  localize (in process), simulate, emulate (a local KiwiSDR)
  follow results  watch, map, batch
  models          ab, reload, train, eval
  operate         dead-letters, status
  measure         bench, chaos, memory, eval, picture
`heimdall VERB -h` describes each; settings come from HEIMDALL_* variables (README)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heimdall",
        description="A worker fleet that localizes radio transmitters from SDR IQ recordings.",
        epilog=GROUPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(_Verbs(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import redis
    from kombu.exceptions import OperationalError
    from pydantic import ValidationError

    from heimdall.schemas import ModelIntegrityError

    args = build_parser().parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:
        from heimdall.inference.failures import validation_message

        print(f"heimdall: invalid HEIMDALL_* setting: {validation_message(exc)}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ModelIntegrityError as exc:
        print(f"heimdall: model refused: {exc}", file=sys.stderr)
    except (redis.ConnectionError, OperationalError) as exc:
        url = redacted_url(get_settings().redis_url)
        print(f"heimdall: cannot reach Redis at {url} (HEIMDALL_REDIS_URL): {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `heimdall … --json | head`: the reader has all it wanted
        sys.stderr.close()
        return 0
    return 2
