"""Bad input against real servers: oversized sessions, corrupt items, racing writers."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from cyclicsess import (
    ITEM_SIZE_LIMIT,
    DynamoClient,
    SessionConflict,
    SessionStore,
    SessionTooLarge,
)
from cyclicsess._item import WRITE_ID_LENGTH
from tests.integration.conftest import StoreFactory
from tests.integration.test_store import raw_item


async def test_oversized_session_is_refused_before_the_write(store: SessionStore) -> None:
    sid = await store.create({"cart": ["book"]})
    sent = store.client.requests_sent
    huge = {"blob": os.urandom(500_000)}  # random bytes: no compression helps
    with pytest.raises(SessionTooLarge) as info:
        await store.set(sid, huge)
    assert info.value.size_bytes > ITEM_SIZE_LIMIT == info.value.limit_bytes
    with pytest.raises(SessionTooLarge):
        await store.set(sid, huge, version=1)
    with pytest.raises(SessionTooLarge):
        await store.create(huge)
    assert store.client.requests_sent == sent
    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"cart": ["book"]}, 1)


async def test_a_compressible_session_over_the_limit_is_stored(store: SessionStore) -> None:
    text = " ".join(f"line {n} of a long form draft" for n in range(40_000))
    assert len(text) > 2 * ITEM_SIZE_LIMIT
    sid = await store.create({"draft": text})
    record = await store.get(sid)
    assert record is not None and record.data == {"draft": text}


def _largest(size_of: Callable[[bytes], int]) -> int:
    """The most random bytes a session ``{"b": ...}`` can hold under ``size_of``."""
    padding = 400_000
    padding += ITEM_SIZE_LIMIT - size_of(msgpack.packb({"b": b"x" * padding}))
    assert size_of(msgpack.packb({"b": b"x" * padding})) == ITEM_SIZE_LIMIT
    return padding


@pytest.mark.servers("dynalite")  # moto refuses items a little below the real limit
@pytest.mark.parametrize("separate", [True, False], ids=["data-item", "inline"])
async def test_size_limit_is_dynamodbs_own(make_store: StoreFactory, separate: bool) -> None:
    store = await make_store(separate_large_data=separate)
    sid = await store.create({})
    key = store.storage_key(sid)
    if separate:  # the data goes to an item of its own, whose key is longer
        data_key = store.layout.data_key(key, "x" * WRITE_ID_LENGTH)
        padding = _largest(lambda blob: store.layout.data_item_size(data_key, blob))
    else:
        padding = _largest(lambda blob: store.layout.item_size(key, blob))
    largest = {"b": os.urandom(padding)}
    assert await store.set(sid, largest) == 2  # the server takes the largest we allow
    with pytest.raises(SessionTooLarge):
        await store.set(sid, {"b": os.urandom(padding + 1)})
    record = await store.get(sid)
    assert record is not None and record.data == largest
    # every write may add what it adds (regenerate marks the old item): still within
    moved = await store.regenerate(sid)
    assert await store.set(moved, largest) == 2
    record = await store.get(moved)
    assert record is not None and record.data == largest
    created = await store.create(largest)
    assert await store.regenerate(created) != created


def _corruptions() -> dict[str, Any]:
    def b64(blob: bytes) -> dict[str, str]:
        return {"B": base64.b64encode(blob).decode()}

    return {
        "random bytes": lambda item: item.update(data=b64(b"\xc1\x00\xff garbage")),
        "truncated msgpack": lambda item: item.update(data=b64(msgpack.packb({"a": "b" * 50})[:9])),
        "msgpack list": lambda item: item.update(data=b64(msgpack.packb([1, 2, 3]))),
        "string data": lambda item: item.update(data={"S": "not binary"}),
        "number data": lambda item: item.update(data={"N": "7"}),
        "no data": lambda item: item.pop("data"),
        "no expires": lambda item: item.pop("expires"),
        "string expires": lambda item: item.update(expires={"S": "tomorrow"}),
        "no version": lambda item: item.pop("ver"),
        "list version": lambda item: item.update(ver={"L": []}),
        "touched past the year 9999": lambda item: item.update(touched={"N": "1" + "0" * 30}),
        "expires past the year 9999": lambda item: item.update(expires={"N": "99999999999999"}),
        "negative created": lambda item: item.update(created={"N": "-86400"}),
        "compressed garbage": lambda item: item.update(data=b64(b"\x00z not a zlib stream")),
        "unknown compression": lambda item: item.update(data=b64(b"\x00q" + zlib.compress(b"x"))),
        "data item of another type": lambda item: item.update(dref={"N": "1"}, dexp={"N": "1"}),
        "data item unknown": lambda item: item.update(dref={"S": "sess:none#x"}, dexp={"N": "9"}),
    }


@pytest.mark.parametrize("corruption", sorted(_corruptions()))
async def test_corrupt_items_read_as_none_and_stay(
    corruption: str,
    store: SessionStore,
    raw: DynamoClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = await store.create({"a": 1})
    item = await raw_item(raw, store, sid)
    assert item is not None
    _corruptions()[corruption](item)
    await raw.call("PutItem", {"TableName": store.layout.table, "Item": item})
    with caplog.at_level(logging.DEBUG, logger="cyclicsess"):
        assert await store.get(sid) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "a corrupt session must be logged"
    tag = store.storage_key(sid).removeprefix("sess:")[:12]
    assert all(tag in line and sid not in line for line in warnings)
    assert await raw_item(raw, store, sid) == item  # left for inspection, not deleted


@pytest.mark.servers("dynalite")  # its conditional writes are atomic; moto's are not
async def test_concurrent_versioned_writers_lose_nothing(store: SessionStore) -> None:
    writers = 32
    sid = await store.create({"log": []})
    wins: list[int] = []
    conflicts = 0

    async def writer(name: int) -> None:
        nonlocal conflicts
        for _ in range(200):  # bounded: each round lets at least one writer through
            record = await store.get(sid)
            assert record is not None
            try:
                version = await store.set(
                    sid, {"log": [*record.data["log"], name]}, version=record.version
                )
            except SessionConflict:
                conflicts += 1
                continue
            wins.append(version)
            return
        raise AssertionError(f"writer {name} never got through")

    await asyncio.gather(*(writer(n) for n in range(writers)))
    assert sorted(wins) == list(range(2, writers + 2))  # one winner per version
    assert conflicts > 0
    record = await store.get(sid)
    assert record is not None
    assert record.version == writers + 1
    assert sorted(record.data["log"]) == list(range(writers))  # every accepted write kept
