"""Edges of the store: writes recognised as one's own, purges that race renewals, clear errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cyclicsess import (
    ResourceNotFound,
    RetryPolicy,
    SessionConflict,
    SessionNotFound,
    SessionStore,
    StoreUnavailable,
)
from tests.faultproxy import FaultProxy
from tests.helpers import FakeClock, closed_port
from tests.integration.conftest import StoreFactory
from tests.integration.test_store import raw_item

#: Attempts that outlast a stalled request rather than retry it.
PATIENT = RetryPolicy(budget=dt.timedelta(seconds=5), attempt_timeout=dt.timedelta(seconds=4))


@pytest.fixture
async def proxy(server: Any) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(server.url, stall=1.0) as running:
        yield running


async def test_a_retried_save_is_not_mistaken_for_another_writers_equal_one(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    direct = await make_store()
    behind_proxy = await make_store(endpoint_url=proxy.url)
    sid = await direct.create({"count": 1})
    # both read version 1 and increment the counter: both would write {"count": 2}
    assert await direct.set(sid, {"count": 2}, version=1) == 2
    proxy.fail_next(1, "500", operation="UpdateItem")  # the other's first attempt fails
    with pytest.raises(SessionConflict):
        await behind_proxy.set(sid, {"count": 2}, version=1)
    assert proxy.count("UpdateItem") == 2  # it was retried, and the retry met a stranger


async def test_purge_leaves_a_session_renewed_after_the_scan(
    make_store: StoreFactory, proxy: FaultProxy, clock: FakeClock
) -> None:
    # sessions of 30 minutes, made 2200 s ago by the purging host's clock: both
    # ended 400 s ago, past the 5-minute grace
    web_clock = FakeClock(clock.now - 2200)
    web = await make_store(clock=web_clock, ttl=dt.timedelta(minutes=30))
    purger = await make_store(endpoint_url=proxy.url, retry=PATIENT, ttl=dt.timedelta(minutes=30))
    renewed = await web.create({"user": "ada"})
    ended = await web.create({"user": "bob"})
    # the web server's clock runs 410 s behind: by it, the sessions are still live
    web_clock.advance(1790)
    # the purge's deletes are held until the renewal has happened
    proxy.fail_next(2, "stall", operation="DeleteItem")
    proxy.fail_next(1, "stall", operation="BatchWriteItem")
    purge = asyncio.ensure_future(purger.purge_expired(grace=dt.timedelta(minutes=5)))
    for _ in range(500):  # the scan has run once a delete arrives
        if proxy.count("DeleteItem") or proxy.count("BatchWriteItem"):
            break
        await asyncio.sleep(0.01)
    assert await web.touch(renewed) is True  # live by the web server's clock
    deleted = await purge
    assert deleted == 1
    assert await raw_item(purger.client, web, renewed) is not None
    assert await web.get(renewed) is not None
    assert await raw_item(purger.client, web, ended) is None


@pytest.mark.servers("moto")  # returns the item that failed a condition
async def test_a_failed_condition_on_a_missing_item_costs_no_second_read(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    store = await make_store(endpoint_url=proxy.url)
    sid = await store.create({"n": 1})
    await store.set(sid, {"n": 2})
    with pytest.raises(SessionConflict):  # the server answers with the item: learnt
        await store.set(sid, {"n": 3}, version=1)
    await store.destroy(sid)
    proxy.reset_counts()
    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 4}, version=2)
    assert proxy.requests == ["UpdateItem"]


async def test_dynamodb_itself_is_known_to_return_the_item() -> None:
    store = SessionStore("t", endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")
    local = SessionStore("t", endpoint_url="http://127.0.0.1:8000")
    await store.open()
    await local.open()
    assert store.client.returns_old_items is True
    assert local.client.returns_old_items is None  # learnt from the first answer


async def test_a_missing_table_is_named_with_how_to_create_it(server: Any) -> None:
    store = SessionStore("no-such-table", endpoint_url=server.url)
    with pytest.raises(ResourceNotFound) as info:
        await store.create({"n": 1})
    message = str(info.value)
    assert "'no-such-table'" in message
    assert "python -m cyclicsess ensure-table no-such-table" in message
    await store.close()


async def test_a_dead_endpoint_is_one_readable_line() -> None:
    port = closed_port()
    store = SessionStore(
        "t",
        endpoint_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(budget=dt.timedelta(seconds=0.3)),
    )
    with pytest.raises(StoreUnavailable) as info:
        await store.get("A" * 43)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200
    assert f"cannot connect to 127.0.0.1:{port}" in message
    assert "GetItem" in message
    await store.close()
