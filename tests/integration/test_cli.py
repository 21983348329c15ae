"""The command line against a real server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from cyclicsess import SessionStore
from tests.helpers import FakeClock


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cyclicsess", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_ensure_table_then_purge_expired(server: Any) -> None:
    table = f"cli-{uuid.uuid4().hex[:8]}"
    done = cli("ensure-table", table, "--endpoint-url", server.url)
    assert done.returncode == 0, done.stderr
    assert f"table {table} is ACTIVE" in done.stdout
    clock = FakeClock(start=1_000_000_000)  # long ago: its sessions are expired now
    async with SessionStore(table, endpoint_url=server.url, clock=clock) as store:
        for _ in range(3):
            await store.create({})
    done = cli("purge-expired", table, "--endpoint-url", server.url)
    assert done.returncode == 0, done.stderr
    assert "deleted 3 expired sessions" in done.stdout


def test_errors_are_one_clear_line(server: Any) -> None:
    done = cli("purge-expired", "no-such-table", "--endpoint-url", server.url)
    assert done.returncode == 1
    assert "error: ResourceNotFoundException" in done.stderr
    assert "Traceback" not in done.stderr


async def test_purge_keeps_what_ended_within_the_grace(server: Any) -> None:
    table = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli("ensure-table", table, "--endpoint-url", server.url).returncode == 0
    clock = FakeClock()
    async with SessionStore(table, endpoint_url=server.url, clock=clock) as store:
        clock.advance(-store.ttl_s - 120)  # made so long ago that they ended 2 minutes ago
        for _ in range(2):
            await store.create({})
    done = cli("purge-expired", table, "--endpoint-url", server.url)  # grace: 5 minutes
    assert "deleted 0 expired sessions" in done.stdout, done.stderr
    done = cli("purge-expired", table, "--grace", "1m", "--endpoint-url", server.url)
    assert "deleted 2 expired sessions" in done.stdout, done.stderr
    assert cli("purge-expired", table, "--grace", "soon").returncode == 2  # usage error
