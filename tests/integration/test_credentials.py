"""Credentials that refresh (ECS/EKS containers, instance metadata, SSO), played on loopback.

A container credentials endpoint of the test's own hands out short-lived keys
and can be made slow or failing; requests reach the server through a gateway
that checks every SigV4 signature, so the tests see which keys signed what.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from cyclicsess import (
    Credentials,
    DynamoClient,
    RetryPolicy,
    SessionStore,
    StoreUnavailable,
    open_client,
)
from tests.faultproxy import FaultProxy
from tests.stubs import CredentialsEndpoint

StoreFactory = Callable[..., Awaitable[SessionStore]]

#: botocore refreshes these at once (under 10 minutes left), but they are valid.
LAST_MINUTES = dt.timedelta(minutes=5)
#: Too close to expiry to sign with.
NEARLY_EXPIRED = dt.timedelta(seconds=30)
FRESH = dt.timedelta(hours=1)
BUDGET = RetryPolicy(budget=dt.timedelta(seconds=1), attempt_timeout=dt.timedelta(seconds=0.5))
#: Longer than botocore's whole container fetch (3 attempts of 2 s, 1 s apart).
SLOW_S = 10.0
SLACK_S = 0.5


def lifetimes(first: dt.timedelta, then: dt.timedelta) -> Callable[[int], dt.timedelta]:
    return lambda number: first if number == 1 else then


@pytest.fixture
async def endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CredentialsEndpoint]:
    """A container credentials endpoint, the only credentials the store can find."""
    async with CredentialsEndpoint(lifetimes(LAST_MINUTES, LAST_MINUTES)) as running:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", running.url + "/creds")
        yield running


@pytest.fixture
async def gateway(server: Any, endpoint: CredentialsEndpoint) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(server.url, check_signatures=endpoint.secrets()) as running:
        yield running


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def test_a_slow_endpoint_never_stalls_calls_while_the_keys_last(
    make_store: StoreFactory, endpoint: CredentialsEndpoint, gateway: FaultProxy
) -> None:
    store = await make_store(endpoint_url=gateway.url, retry=BUDGET)
    in_hand = gateway.access_keys[-1]
    endpoint.delay_s = SLOW_S  # every refresh from now on hangs
    gateway.access_keys.clear()
    for _ in range(5):
        sid, elapsed = await timed(store.create({"n": 1}))
        assert elapsed < BUDGET.budget.total_seconds()
        record, elapsed = await timed(store.get(sid))
        assert record is not None
        assert elapsed < BUDGET.budget.total_seconds()
    assert set(gateway.access_keys) == {in_hand}  # the keys in hand, still valid


async def test_an_outage_in_the_last_minutes_keeps_the_valid_keys_and_one_refresh_at_a_time(
    make_store: StoreFactory, endpoint: CredentialsEndpoint, gateway: FaultProxy
) -> None:
    store = await make_store(endpoint_url=gateway.url, retry=BUDGET)
    fetched = endpoint.fetches
    in_hand = gateway.access_keys[-1]
    endpoint.status = 500  # the metadata service is down
    gateway.access_keys.clear()
    for _ in range(3):
        sids = await asyncio.gather(*(store.create({"n": n}) for n in range(20)))
        assert len(set(sids)) == 20
    # one refresh attempt (botocore tries its fetch 3 times), not one per call
    assert endpoint.fetches - fetched <= 3
    assert set(gateway.access_keys) == {in_hand}


async def static_keys() -> Credentials:
    return Credentials("local", "local")


async def test_nearly_expired_keys_wait_for_one_shared_refresh(
    server: Any, endpoint: CredentialsEndpoint, gateway: FaultProxy
) -> None:
    table = f"t-{uuid.uuid4().hex[:12]}"
    setup = DynamoClient(endpoint_url=server.url, region="us-east-1", credentials=static_keys)
    await SessionStore(table, client=setup).ensure_table()
    await setup.close()
    endpoint.lifetime = lifetimes(NEARLY_EXPIRED, FRESH)
    endpoint.delay_s = 0.3
    store = SessionStore(table, endpoint_url=gateway.url)  # its first calls are these 20
    sids = await asyncio.gather(*(store.create({"n": n}) for n in range(20)))
    assert len(set(sids)) == 20
    # the first keys (resolution), then one refresh that every one of the calls waited for
    assert endpoint.fetches == 2
    assert set(gateway.access_keys) == {"AKID2"}
    await store.close()


async def test_a_refresh_that_never_answers_is_bounded_by_the_budget(
    make_store: StoreFactory, endpoint: CredentialsEndpoint, gateway: FaultProxy
) -> None:
    endpoint.lifetime = lifetimes(NEARLY_EXPIRED, NEARLY_EXPIRED)
    store = await make_store(endpoint_url=gateway.url, retry=BUDGET)
    endpoint.delay_s = SLOW_S
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="credentials") as info:
        await store.create({"n": 1})
    assert time.monotonic() - started < BUDGET.budget.total_seconds() + SLACK_S
    assert "\n" not in str(info.value)


async def test_resolving_credentials_is_bounded_by_the_budget(
    endpoint: CredentialsEndpoint, server: Any
) -> None:
    endpoint.delay_s = SLOW_S
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="not resolved within"):
        await open_client(endpoint_url=server.url, retry=BUDGET)
    assert time.monotonic() - started < BUDGET.budget.total_seconds() + SLACK_S


@contextlib.contextmanager
def endpoint_in_a_thread(endpoint: CredentialsEndpoint) -> Iterator[CredentialsEndpoint]:
    """Serve ``endpoint`` from a loop of its own, so the test may start and end loops."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(endpoint.__aenter__(), loop).result(timeout=5)
        yield endpoint
        asyncio.run_coroutine_threadsafe(endpoint.__aexit__(None, None, None), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_refreshes_work_from_one_event_loop_to_the_next(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_fetch_nearly_expired = CredentialsEndpoint(lifetimes(NEARLY_EXPIRED, NEARLY_EXPIRED))
    with endpoint_in_a_thread(every_fetch_nearly_expired) as endpoint:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url + "/creds")
        store = SessionStore("t-refresh-loops", endpoint_url=server.url, retry=BUDGET)

        async def invocation() -> bool:
            await store.ensure_table()
            return await store.get(await store.create({"n": 1})) is not None

        # every call needs a refresh, run on whichever loop the call runs on
        assert all(asyncio.run(invocation()) for _ in range(3))
        assert endpoint.fetches >= 4
