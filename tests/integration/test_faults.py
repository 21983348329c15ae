"""Faults between the store and a real server: throttling, 5xx, resets, stalls, lost answers.

Every test talks to the server through a :class:`~tests.faultproxy.FaultProxy`
and checks what was retried, what was not, how long giving up took, and that
nothing written was lost or doubled. Fault plans name the operation they hit,
so the table set-up and the reads a test makes itself pass through.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from cyclicsess import (
    RetryPolicy,
    ServerError,
    SessionNotFound,
    SessionStore,
    StoreUnavailable,
    Throttled,
    ValidationError,
    new_session_id,
)
from tests.faultproxy import FaultKind, FaultProxy

StoreFactory = Callable[..., Awaitable[SessionStore]]

#: Room for three or more retries; an attempt gives up after 0.25 s.
RETRYING = RetryPolicy(
    budget=timedelta(seconds=1.5),
    attempt_timeout=timedelta(milliseconds=250),
    base_delay=timedelta(milliseconds=10),
    max_delay=timedelta(milliseconds=100),
)
#: A short budget for the tests that wait for the store to give up.
GIVING_UP = RetryPolicy(
    budget=timedelta(milliseconds=500),
    attempt_timeout=timedelta(milliseconds=200),
    base_delay=timedelta(milliseconds=10),
    max_delay=timedelta(milliseconds=100),
)
#: How much later than its budget a call may give up (event loop and scheduling noise).
SLACK_S = 0.5
#: Longer than RETRYING's attempt timeout, shorter than its budget.
STALL_S = 1.0

OPERATION = {"get": "GetItem", "set": "UpdateItem", "create": "PutItem"}
RETRIED_KINDS: list[FaultKind] = ["throttle", "throttling", "500", "503", "reset"]


@pytest.fixture
async def proxy(server: Any) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(server.url, stall=STALL_S) as running:
        yield running
    # the proxy itself must not have failed: every fault a test saw was planned
    assert running.upstream_errors == []


async def faulty_store(
    make_store: StoreFactory, proxy: FaultProxy, retry: RetryPolicy = RETRYING
) -> SessionStore:
    """A store on a fresh table, reached through the proxy; the counts start at zero."""
    store = await make_store(endpoint_url=proxy.url, retry=retry)
    proxy.reset_counts()
    return store


async def run(store: SessionStore, op: str, sid: str) -> Any:
    """Do ``op`` on the session ``sid`` (``create`` makes a new one instead)."""
    if op == "get":
        return await store.get(sid)
    if op == "set":
        return await store.set(sid, {"n": 2})
    return await store.create({"n": 2})


def elapsed_since(start: float) -> float:
    return asyncio.get_running_loop().time() - start


def now() -> float:
    return asyncio.get_running_loop().time()


# -- retried until success ---------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "set", "create"])
@pytest.mark.parametrize("kind", RETRIED_KINDS)
async def test_retried_until_success(
    make_store: StoreFactory, proxy: FaultProxy, kind: FaultKind, op: str
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    sent = store.client.requests_sent
    proxy.reset_counts()
    proxy.fail_next(3, kind, operation=OPERATION[op])

    result = await run(store, op, sid)

    assert proxy.count(OPERATION[op]) == 4
    assert proxy.faults(OPERATION[op]) == 3
    assert store.client.requests_sent - sent == 4
    if op == "get":
        assert result is not None
        assert (result.data, result.version) == ({"n": 1}, 1)
        return
    if op == "create":
        sid = result
    record = await store.get(sid)
    assert record is not None
    # the faulted requests never reached the server: the data was written once
    assert (record.data, record.version) == ({"n": 2}, 2 if op == "set" else 1)
    if op == "set":
        assert result == 2


@pytest.mark.parametrize("op", ["get", "set", "create"])
async def test_stall_past_the_attempt_timeout_is_retried(
    make_store: StoreFactory, proxy: FaultProxy, op: str
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.reset_counts()
    proxy.fail_next(1, "stall", operation=OPERATION[op])

    start = now()
    result = await run(store, op, sid)
    took = elapsed_since(start)

    assert RETRYING.attempt_timeout.total_seconds() <= took < RETRYING.budget.total_seconds()
    assert proxy.count(OPERATION[op]) == 2
    record = await store.get(result if op == "create" else sid)
    assert record is not None
    # the client hung up on the stalled request, so it was never applied
    assert record.version == (2 if op == "set" else 1)
    assert record.data == ({"n": 1} if op == "get" else {"n": 2})


async def test_bad_crc_is_retried(make_store: StoreFactory, proxy: FaultProxy) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.reset_counts()
    proxy.fail_next(1, "badcrc", operation="GetItem")

    record = await store.get(sid)

    assert record is not None
    assert record.data == {"n": 1}
    assert proxy.count("GetItem") == 2
    assert proxy.faults() == 1


async def test_bad_crc_on_a_versioned_set_is_retried(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    # the corrupted answer's write was applied: the retry must recognise it
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.reset_counts()
    proxy.fail_next(1, "badcrc", operation="UpdateItem")

    assert await store.set(sid, {"n": 2}, version=1) == 2

    assert proxy.count("UpdateItem") == 2
    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"n": 2}, 2)


# -- giving up -----------------------------------------------------------------------

CAUSES: dict[str, type[BaseException] | tuple[type[BaseException], ...]] = {
    "throttle": Throttled,
    "throttling": Throttled,
    "500": ServerError,
    "503": ServerError,
    "reset": (aiohttp.ClientError, OSError),
    "stall": (asyncio.TimeoutError, aiohttp.ClientError),
}


@pytest.mark.parametrize(
    ("kind", "op"),
    [
        ("throttle", "get"),
        ("500", "get"),
        ("reset", "get"),
        ("throttling", "set"),
        ("503", "create"),
        ("reset", "set"),
        ("stall", "get"),
    ],
)
async def test_faults_forever_give_up_within_the_budget(
    make_store: StoreFactory, proxy: FaultProxy, kind: FaultKind, op: str
) -> None:
    store = await faulty_store(make_store, proxy, GIVING_UP)
    sid = await store.create({"n": 1})
    proxy.reset_counts()
    proxy.fail_forever(kind, operation=OPERATION[op])

    start = now()
    with pytest.raises(StoreUnavailable) as caught:
        await run(store, op, sid)
    took = elapsed_since(start)

    budget = GIVING_UP.budget.total_seconds()
    assert took < budget + SLACK_S
    assert caught.value.attempts > 1
    assert proxy.count(OPERATION[op]) == proxy.faults(OPERATION[op]) > 1
    cause = caught.value.__cause__
    assert cause is not None
    # The last attempt gets at least 50 ms; on a loaded machine it may still time
    # out before the proxy sees it, and the cause is then that timeout instead of
    # the fault the server kept giving
    if isinstance(cause, asyncio.TimeoutError):
        assert caught.value.attempts - proxy.count(OPERATION[op]) in (0, 1)
    else:
        assert isinstance(cause, CAUSES[kind])
        assert caught.value.attempts == proxy.count(OPERATION[op])

    proxy.clear()  # the store recovers as soon as the server does
    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"n": 1}, 1)


@pytest.fixture
def gone_endpoint() -> Iterator[str]:
    """A loopback port nothing listens on: bound but not listening, so refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("op", ["get", "set", "create"])
async def test_server_gone_gives_up_within_the_budget(gone_endpoint: str, op: str) -> None:
    async with SessionStore("gone", endpoint_url=gone_endpoint, retry=GIVING_UP) as store:
        start = now()
        with pytest.raises(StoreUnavailable) as caught:
            await run(store, op, new_session_id())
        took = elapsed_since(start)
        assert took < GIVING_UP.budget.total_seconds() + SLACK_S
        assert caught.value.attempts > 1
        assert caught.value.attempts == store.client.requests_sent
        assert isinstance(caught.value.__cause__, (aiohttp.ClientError, OSError))


# -- never retried -------------------------------------------------------------------


async def test_failed_condition_is_not_retried(make_store: StoreFactory, proxy: FaultProxy) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    await store.destroy(sid)
    proxy.reset_counts()

    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 2})

    assert proxy.count("UpdateItem") == 1
    assert proxy.faults() == 0


async def test_validation_error_is_not_retried(make_store: StoreFactory, proxy: FaultProxy) -> None:
    store = await faulty_store(make_store, proxy)
    sent = store.client.requests_sent

    with pytest.raises(ValidationError):
        await store.client.call(
            "GetItem", {"TableName": store.layout.table, "Key": {"nope": {"S": "x"}}}
        )

    assert proxy.requests == ["GetItem"]
    assert store.client.requests_sent - sent == 1


# -- nothing lost, nothing doubled ---------------------------------------------------


async def test_set_retried_after_resets_writes_exactly_once(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    assert await store.set(sid, {"n": 2}) == 2
    proxy.fail_next(2, "reset", operation="UpdateItem")

    data = {"cart": ["apple", "pear"], "user": "ada", "n": 3}
    assert await store.set(sid, data, version=2) == 3

    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == (data, 3)
    assert proxy.faults("UpdateItem") == 2


async def test_versioned_set_whose_answer_was_lost_succeeds_once(
    make_store: StoreFactory, proxy: FaultProxy, raw: Any
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    assert await store.set(sid, {"n": 2}, version=1) == 2
    proxy.reset_counts()
    proxy.fail_next(1, "drop_answer", operation="UpdateItem")

    # the first UpdateItem is applied upstream but its answer is lost; the
    # retry's condition (version 2) then fails on the store's own write
    assert await store.set(sid, {"n": 3}, version=2) == 3

    assert proxy.count("UpdateItem") == 2
    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"n": 3}, 3)
    # and straight from the table, behind the store's back
    item = await raw.call(
        "GetItem",
        {"TableName": store.layout.table, "Key": store.layout.key(store.storage_key(sid))},
    )
    assert item["Item"]["ver"] == {"N": "3"}


async def test_unversioned_set_whose_answer_was_lost_is_applied_once(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    # the retry meets the write id of its first attempt: applied once, version 2
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.fail_next(1, "drop_answer", operation="UpdateItem")

    version = await store.set(sid, {"n": 2})

    record = await store.get(sid)
    assert record is not None
    assert record.data == {"n": 2}
    assert record.version == version == 2


async def test_get_whose_answer_was_lost_is_retried(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.reset_counts()
    proxy.fail_next(2, "drop_answer", operation="GetItem")

    record = await store.get(sid)

    assert record is not None
    assert record.data == {"n": 1}
    assert proxy.count("GetItem") == 3


# -- a new item's PutItem is safe to retry: the store recognises its own write ------


@pytest.mark.parametrize("kind", ["drop_answer", "badcrc"])
async def test_create_whose_answer_was_lost_returns_the_new_session(
    make_store: StoreFactory, proxy: FaultProxy, kind: FaultKind
) -> None:
    store = await faulty_store(make_store, proxy)
    proxy.fail_next(1, kind, operation="PutItem")

    sid = await store.create({"n": 1})

    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"n": 1}, 1)


async def test_regenerate_whose_put_answer_was_lost_moves_the_session(
    make_store: StoreFactory, proxy: FaultProxy
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"n": 1})
    proxy.fail_next(1, "drop_answer", operation="PutItem")

    new_sid = await store.regenerate(sid)

    assert await store.get(sid) is None
    record = await store.get(new_sid)
    assert record is not None
    assert record.data == {"n": 1}


@pytest.mark.parametrize("kind", ["drop_answer", "badcrc"])
async def test_regenerate_whose_first_answer_was_lost_keeps_the_data(
    make_store: StoreFactory, proxy: FaultProxy, kind: FaultKind
) -> None:
    store = await faulty_store(make_store, proxy)
    sid = await store.create({"user": "ada", "cart": ["apple"]})
    proxy.fail_next(1, kind, operation="UpdateItem")  # the move's marking of the old item

    new_sid = await store.regenerate(sid)

    assert await store.get(sid) is None
    record = await store.get(new_sid)
    assert record is not None
    assert record.data == {"user": "ada", "cart": ["apple"]}
