"""Lua scripts run in one round trip with others (a pipeline of EVALSHA calls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.commands.core import Script


def evalsha(script: Script, keys: list, args: list, pipe: Any) -> None:
    """Queue ``script`` on ``pipe`` by its SHA (see :func:`pipelined`)."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def pipelined(
    client: redis.Redis, scripts: Sequence[Script], add: Callable[[Any], None]
) -> list:
    """The replies to the commands ``add(pipe)`` queues, in one round trip.

    Scripts go by EVALSHA: redis-py's scripts in a pipeline first ask SCRIPT EXISTS, one more
    round trip each time. When a restarted Redis has lost them, ``scripts`` are loaded and the
    pipeline runs again (a NOSCRIPT reply means no script of the pipeline ran)."""
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        add(pipe)
        try:
            return pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            for script in scripts:
                client.script_load(script.script)
    raise AssertionError("unreachable")
