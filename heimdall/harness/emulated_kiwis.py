"""Emulated KiwiSDR receivers as a user runs them: a ``heimdall emulate kiwi`` process on a
run of free ports, up once every status page answers (demo, tests)."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

START_TIMEOUT_S = 60.0


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (a run: ``emulate kiwi
    --simulate`` serves receiver i on port + i)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count >= 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no run of {count} free ports on 127.0.0.1")


@dataclass
class EmulatedKiwis:
    process: subprocess.Popen
    ports: list[int]
    names: list[str]
    truth: tuple[float, float] | None  # the simulated transmitter (``--simulate``)

    @property
    def addresses(self) -> list[str]:
        """``HOST:PORT=NAME`` of each, as ``heimdall acquire kiwi`` takes them."""
        return [f"127.0.0.1:{p}={n}" for p, n in zip(self.ports, self.names, strict=True)]


@contextlib.contextmanager
def emulated_kiwis(*args: str, count: int, port: int | None = None) -> Iterator[EmulatedKiwis]:
    """``heimdall emulate kiwi ARGS --port P`` serving ``count`` receivers, until every status
    page answers; stopped on leaving."""
    port = port or free_ports(count)
    process = subprocess.Popen(
        [sys.executable, "-m", "heimdall.cli", "emulate", "kiwi", *args, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ports = list(range(port, port + count))
        names = [_wait_for_status(process, p) for p in ports]
        yield EmulatedKiwis(process, ports, names, _truth(process))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_status(process: subprocess.Popen, port: int) -> str:
    """The receiver's name, once its status page answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1.0).read()
            match = re.search(rb"^name=(.*)$", page, re.MULTILINE)
            return match[1].decode() if match else f"rx{port}"
        except OSError as exc:
            if process.poll() is not None:
                why = process.stderr.read()
                raise RuntimeError(f"heimdall emulate kiwi exited: {why}") from exc
            if time.monotonic() > deadline:
                waited = f"{START_TIMEOUT_S:g} s"
                raise TimeoutError(f"no status page on port {port} in {waited}") from exc
            time.sleep(0.1)


def _truth(process: subprocess.Popen) -> tuple[float, float] | None:
    """The simulated transmitter's position from the emulator's first line (``--simulate``)."""
    if process.stdout is None:
        return None
    line = process.stdout.readline()
    match = re.search(r"transmitter at ([-0-9.]+), ([-0-9.]+)", line)
    return (float(match[1]), float(match[2])) if match else None
