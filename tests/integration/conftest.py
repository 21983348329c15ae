"""Fixtures for tests against real DynamoDB-compatible servers.

`make test` starts dynalite and moto's server and names them in
CYCLICSESS_TEST_SERVERS (``name=url,...``); every integration test runs once
per server, on a fresh table. ``@pytest.mark.servers("dynalite")`` limits a
test to the servers that can run it (say, atomic conditional writes).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyclicsess import DynamoClient, SessionStore, open_client
from tests import harness
from tests.helpers import FakeClock

# The local servers accept any credentials; never let a test find real ones.
os.environ.update(
    AWS_ACCESS_KEY_ID="local",
    AWS_SECRET_ACCESS_KEY="local",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
# Nor a proxy or CA bundle of the machine's: the tests that need them set their own.
for _name in (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_CA_BUNDLE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
):
    os.environ.pop(_name, None)


@dataclass(frozen=True)
class Server:
    name: str
    url: str


def configured_servers() -> list[Server]:
    return [Server(name, url) for name, url in harness.servers().items()]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "servers(*names): run only against these servers")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" not in metafunc.fixturenames:
        return
    servers = configured_servers()
    if not servers:
        raise pytest.UsageError(
            "integration tests need servers: run `make test` (or `make integration`)"
        )
    marker = metafunc.definition.get_closest_marker("servers")
    if marker is not None:
        servers = [server for server in servers if server.name in marker.args]
    metafunc.parametrize("server", servers, ids=[server.name for server in servers])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


StoreFactory = Callable[..., Awaitable[SessionStore]]


@contextlib.asynccontextmanager
async def stores_on(endpoint_url: str, clock: FakeClock) -> AsyncIterator[StoreFactory]:
    """Open stores at ``endpoint_url`` on a fresh table (or a named one); close them after."""
    stores: list[SessionStore] = []
    fresh_table = f"t-{uuid.uuid4().hex[:12]}"

    async def factory(table: str | None = None, **options: Any) -> SessionStore:
        options.setdefault("clock", clock)
        options.setdefault("endpoint_url", endpoint_url)
        store = SessionStore(table or fresh_table, **options)
        stores.append(store)
        await store.open()
        await store.ensure_table()
        return store

    try:
        yield factory
    finally:
        for store in stores:
            await store.close()


@pytest.fixture
async def make_store(server: Server, clock: FakeClock) -> AsyncIterator[StoreFactory]:
    """Open stores on the server, on a fresh table (or a named one)."""
    async with stores_on(server.url, clock) as factory:
        yield factory


@pytest.fixture
async def store(make_store: StoreFactory) -> SessionStore:
    return await make_store()


@pytest.fixture
async def raw(server: Server) -> AsyncIterator[DynamoClient]:
    """The bare transport, to read and plant items behind the store's back."""
    client = await open_client(endpoint_url=server.url)
    yield client
    await client.close()
