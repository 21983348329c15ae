"""What the tests and the benchmarks share: the servers' variable, processes, percentiles, tables.

``tests/servers.py run`` names the local servers it started in
``CYCLICSESS_TEST_SERVERS`` (``name=url,...``); :func:`servers` reads it and
:func:`server_url` refuses anything off loopback. Processes a benchmark
starts are stopped by pid (:func:`started`); percentiles are nearest-rank
everywhere; :func:`interleaved` orders measurement cells anew each round, so a
slow moment of a shared machine lands on every cell alike.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK",
    "free_port",
    "interleaved",
    "markdown_table",
    "percentile",
    "server_url",
    "servers",
    "started",
    "stop",
]

SERVERS_VARIABLE = "CYCLICSESS_TEST_SERVERS"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
T = TypeVar("T")


def servers() -> dict[str, str]:
    """The local servers named in ``CYCLICSESS_TEST_SERVERS``: name -> URL, in order."""
    spec = os.environ.get(SERVERS_VARIABLE, "")
    named = (entry.split("=", 1) for entry in spec.split(",") if "=" in entry)
    return {name.strip(): url.strip() for name, url in named}


def server_url(name: str, script: str = "python -m bench.NAME") -> str:
    """The URL of server ``name``, on loopback; exits with how to start it if absent."""
    url = servers().get(name)
    if url is None:
        raise SystemExit(
            f"no {name}: run me as `python tests/servers.py run --only {name} -- {script}` "
            f"({SERVERS_VARIABLE}={name}=URL)"
        )
    if urlsplit(url).hostname not in LOOPBACK:
        raise SystemExit(f"refusing to load a server off loopback: {url}")
    return url


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Stop a process we started, by its pid: SIGTERM, then SIGKILL after ``timeout_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def started(argv: Sequence[str], **options: Any) -> Iterator[subprocess.Popen[Any]]:
    """Run ``argv`` (``subprocess.Popen`` options) for the block; stop it by pid after."""
    process = subprocess.Popen(list(argv), **options)
    try:
        yield process
    finally:
        stop(process)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; NaN if none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A markdown table; the first ``left`` columns are text, the others numbers."""
    align = ["---" if i < left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def interleaved(cells: Sequence[T], rounds: int, seed: int = 0) -> Iterator[T]:
    """Every cell once per round for ``rounds`` rounds, shuffled anew each round (seeded)."""
    order = list(cells)
    shuffle = random.Random(seed)
    for _ in range(rounds):
        shuffle.shuffle(order)
        yield from order
