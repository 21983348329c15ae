"""The command line against a real server: every command, its errors and its help."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from typing import Any

import pytest

from cyclicsess import SessionStore
from cyclicsess import store as store_module
from tests.helpers import FakeClock

SECRET = "cli-secret-0123456789abcdef"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cyclicsess", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def dashed_id() -> str:
    """A session id that begins with '-' (one in 64 does)."""
    return "-" + secrets.token_urlsafe(32)[1:]


@pytest.fixture
def table(server: Any) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    done = cli("ensure-table", name, "--endpoint-url", server.url, "--user-key", "user")
    assert done.returncode == 0, done.stderr
    assert f"table {name} is ACTIVE with its user index" in done.stdout
    return name


def store_on(server: Any, table: str, **options: Any) -> SessionStore:
    options.setdefault("secret", SECRET)
    return SessionStore(table, endpoint_url=server.url, user_key="user", **options)


def on(server: Any, *args: str) -> list[str]:
    return [*args, "--endpoint-url", server.url, "--user-key", "user", "--secret-env", "SECRET"]


async def test_inspect_revoke_and_revoke_user_take_ids_that_begin_with_a_dash(
    server: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"SECRET": SECRET}
    monkeypatch.setattr(store_module, "new_session_id", dashed_id)
    async with store_on(server, table) as store:
        ada = [await store.create({"user": "ada", "n": n}) for n in range(3)]
    assert all(sid.startswith("-") for sid in ada)

    done = cli(*on(server, "inspect", table, ada[0]), env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["version"] == 1 and record["state"] == "live"
    assert {"created", "touched", "expires", "storage_key"} <= record.keys()
    assert "data" not in record
    done = cli(*on(server, "inspect", table, ada[0], "--data"), env=env)
    assert json.loads(done.stdout)["data"] == {"user": "ada", "n": 0}

    done = cli(*on(server, "revoke", table, ada[0]), env=env)
    assert done.returncode == 0 and "ended" in done.stdout, done.stderr
    done = cli(*on(server, "revoke", table, ada[0]), env=env)
    assert "nothing to end" in done.stdout

    done = cli(*on(server, "revoke-user", table, "ada", "--keep", ada[1]), env=env)
    assert done.returncode == 0, done.stderr
    assert "ended 1 sessions" in done.stdout
    async with store_on(server, table) as store:
        assert await store.get(ada[1]) is not None
        assert await store.get(ada[2]) is None


async def test_stats_counts_and_sizes(server: Any, table: str) -> None:
    clock = FakeClock()
    async with store_on(server, table, clock=clock) as store:
        for n in range(4):
            await store.create({"user": f"u{n}", "blob": "x" * (100 * n)})
        clock.advance(-store.ttl_s - 60)
        await store.create({"user": "old"})  # ended a minute ago
    done = cli("stats", table, "--endpoint-url", server.url, "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert (stats["items"], stats["sessions"], stats["live"], stats["expired"]) == (5, 5, 4, 1)
    sizes = stats["session_size_bytes"]
    assert sizes["p50"] <= sizes["p90"] <= sizes["max"]
    assert stats["stored_bytes"] > 5 * 100
    assert stats["storage_dollars_per_month"] > 0
    expected_ttl = "DISABLED" if server.name == "dynalite" else "ENABLED on expires"  # no TTL API
    assert expected_ttl in stats["ttl"]
    text = cli("stats", table, "--endpoint-url", server.url)
    assert "5 sessions (4 live, 1 expired)" in text.stdout
    assert text.stderr == ""  # no progress line: stderr is not a terminal


async def test_purge_keeps_what_ended_within_the_grace(server: Any, table: str) -> None:
    clock = FakeClock()
    async with store_on(server, table, clock=clock) as store:
        clock.advance(-store.ttl_s - 120)  # made so long ago that they ended 2 minutes ago
        for _ in range(2):
            await store.create({})
    done = cli("purge-expired", table, "--endpoint-url", server.url)  # grace: 5 minutes
    assert "deleted 0 expired items" in done.stdout, done.stderr
    done = cli("purge-expired", table, "--grace", "1m", "--endpoint-url", server.url)
    assert "deleted 2 expired items" in done.stdout, done.stderr


async def test_large_sessions_count_inspect_and_revoke_with_their_data_items(
    server: Any, table: str
) -> None:
    env = {"SECRET": SECRET}
    data = {"user": "ada", "draft": os.urandom(5_000).hex()}  # 10 KB, half compressible
    async with store_on(server, table) as store:
        big = await store.create(data)
        small = await store.create({"user": "grace"})
    stats = json.loads(cli(*on(server, "stats", table, "--json"), env=env).stdout)
    assert (stats["items"], stats["sessions"], stats["data_items"]) == (3, 2, 1)
    assert stats["other_items"] == 0
    assert stats["session_size_bytes"]["max"] > 5_000  # a session counts its data item
    done = cli(*on(server, "inspect", table, big, "--data"), env=env)
    record = json.loads(done.stdout)
    assert record["data"] == data and record["data_item"].startswith(record["storage_key"] + "#")
    assert cli(*on(server, "inspect", table, small), env=env).returncode == 0
    done = cli(*on(server, "revoke", table, big), env=env)
    assert "ended" in done.stdout, done.stderr
    stats = json.loads(cli(*on(server, "stats", table, "--json"), env=env).stdout)
    assert (stats["items"], stats["sessions"], stats["data_items"]) == (1, 1, 0)


def test_errors_are_one_clear_line(server: Any) -> None:
    done = cli("purge-expired", "no-such-table", "--endpoint-url", server.url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ResourceNotFoundException")
    assert "ensure-table no-such-table" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = cli("inspect", "t", "not-an-id", "--endpoint-url", server.url)
    assert done.returncode == 1 and "not a session id" in done.stderr
    done = cli("revoke-user", "t", "ada", "--endpoint-url", server.url)  # no --user-key
    assert done.returncode == 1 and "user_key" in done.stderr
    done = cli("inspect", "t", "A" * 43, "--secret-env", "UNSET_VARIABLE")
    assert done.returncode == 1 and "UNSET_VARIABLE is not set" in done.stderr
    assert cli("purge-expired", "t", "--grace", "soon").returncode == 2  # a usage error


@pytest.mark.parametrize(
    "command",
    ["ensure-table", "stats", "inspect", "revoke", "revoke-user", "purge-expired",
     "iam-policy", "template"],
)  # fmt: skip
def test_every_command_has_help(command: str) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0
    assert "--endpoint-url" in done.stdout and "--secret-env" in done.stdout
