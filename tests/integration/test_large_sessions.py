"""Large sessions against real servers: compression, data items, what each call costs.

A session whose head would pass one write unit keeps its data in a data item
of its own; these tests check what the table holds, that every guarantee
still holds, and (on dynalite, which reports consumed capacity as DynamoDB
bills it) what touches, reads and logins cost.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from typing import Any

import pytest

from cyclicsess import DynamoClient, JsonCodec, SessionStore
from cyclicsess._capacity import item_size
from cyclicsess._compress import compressed
from cyclicsess._item import HEAD_LIMIT
from tests.helpers import FakeClock
from tests.integration.conftest import StoreFactory
from tests.integration.test_store import raw_item

HOUR = 3600


def large(size: int = 20_000) -> dict[str, Any]:
    """A session of random (incompressible) bytes: it cannot fit a 1 KB head."""
    return {"user": "ada", "draft": os.urandom(size)}


async def get_raw(raw: DynamoClient, store: SessionStore, key: str) -> dict[str, Any] | None:
    answer = await raw.call("GetItem", store.requests.read(key, consistent=True))
    item: dict[str, Any] | None = answer.get("Item")
    return item


async def data_item_of(raw: DynamoClient, store: SessionStore, sid: str) -> dict[str, Any] | None:
    head = await raw_item(raw, store, sid)
    assert head is not None and "dref" in head, f"no data item referred to: {head}"
    return await get_raw(raw, store, head["dref"]["S"])


async def plant_blob(raw: DynamoClient, store: SessionStore, sid: str, blob: bytes) -> None:
    """Write ``blob`` as a session's inline data, behind the store's back."""
    await raw.call(
        "UpdateItem",
        {
            "TableName": store.layout.table,
            "Key": store.layout.key(store.storage_key(sid)),
            "UpdateExpression": "SET #d = :d",
            "ExpressionAttributeNames": {"#d": "data"},
            "ExpressionAttributeValues": {":d": {"B": base64.b64encode(blob).decode()}},
        },
    )


async def test_a_large_session_keeps_a_small_head(store: SessionStore, raw: DynamoClient) -> None:
    data = large()
    sid = await store.create(data)
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" not in head
    assert item_size(head) <= HEAD_LIMIT
    data_item = await data_item_of(raw, store, sid)
    assert data_item is not None and item_size(data_item) > 20_000
    assert int(data_item["expires"]["N"]) == int(head["dexp"]["N"]) >= int(head["expires"]["N"])
    record = await store.get(sid)
    assert record is not None and record.data == data


async def test_a_small_session_is_one_item_read_in_one_request(store: SessionStore) -> None:
    sid = await store.create({"user": "ada", "csrf": "x" * 43})
    sent = store.client.requests_sent
    assert await store.get(sid) is not None
    assert store.client.requests_sent == sent + 1


async def test_a_large_session_is_read_in_two_requests(store: SessionStore) -> None:
    sid = await store.create(large())
    sent = store.client.requests_sent
    assert await store.get(sid) is not None
    assert store.client.requests_sent == sent + 2


async def test_saves_swap_between_inline_and_a_data_item(
    store: SessionStore, raw: DynamoClient
) -> None:
    sid = await store.create({"n": 1})
    assert await store.set(sid, large()) == 2
    first = await raw_item(raw, store, sid)
    assert first is not None and "dref" in first and "data" not in first
    bigger = large(30_000)
    assert await store.set(sid, bigger, version=2) == 3
    second = await raw_item(raw, store, sid)
    assert second is not None and second["dref"] != first["dref"]  # a new item per change
    record = await store.get(sid)
    assert record is not None and record.data == bigger
    assert await store.set(sid, {"n": 2}) == 4
    inline = await raw_item(raw, store, sid)
    assert inline is not None and "data" in inline and "dref" not in inline
    record = await store.get(sid)
    assert record is not None and record.data == {"n": 2}


async def test_data_goes_apart_once_touches_would_cost_more(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(0))
    sid = await store.create(large(1_500))  # two write units in the head: kept there at first
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" in head
    record = await store.get(sid)
    assert record is not None
    for n in (1, 2):
        clock.advance(1)
        assert await store.touch(sid) is True  # by id: counted, never moved
        record = await store.get(sid)
        assert record is not None and record.touches_since_save == n  # counted in the head
    saved = await store.save_record(record, large(1_500))  # two touches per write: apart
    head = await raw_item(raw, store, sid)
    assert head is not None and "dref" in head and "tn" not in head
    assert saved.touches_since_save == 0
    again = await store.save_record(saved, large(1_500))  # no touch in between: back inline
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" in head and "dref" not in head
    record = await store.get(sid)
    assert record is not None and record.version == again.version == 3


async def test_a_touched_session_moves_its_data_out_at_the_second_touch(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(0))
    data = large(1_500)  # two write units in the head
    sid = await store.create(data)
    record = await store.get(sid)
    assert record is not None and not record.stored_apart
    clock.advance(1)
    record = await store.touch_record(record)  # one touch: worth no move yet
    assert record is not None and not record.stored_apart
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" in head
    clock.advance(1)
    sent = store.client.requests_sent
    moved = await store.touch_record(record)  # the second pays for a data item
    assert moved is not None and moved.stored_apart and moved.touches_since_save == 0
    assert store.client.requests_sent - sent == 2  # the data item, then the head
    head = await raw_item(raw, store, sid)
    assert head is not None and "dref" in head and "data" not in head and head["ver"]["N"] == "1"
    assert int(head["expires"]["N"]) == int(clock.now + store.ttl_s)  # renewed as a touch
    fresh = await store.get(sid)
    assert fresh is not None and fresh.data == data and fresh.version == 1


async def test_a_move_out_gives_way_to_a_concurrent_save(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(0))
    sid = await store.create(large(1_500))
    record = await store.get(sid)
    assert record is not None
    clock.advance(1)
    record = await store.touch_record(record)
    assert record is not None
    newer = {"n": 1}
    assert await store.set(sid, newer, version=1) == 2  # another request saved meanwhile
    clock.advance(1)
    touched = await store.touch_record(record)  # its move is refused; a plain touch instead
    assert touched is not None and not touched.stored_apart
    current = await store.get(sid)
    assert current is not None and current.data == newer and current.version == 2


async def test_destroy_deletes_the_data_item(store: SessionStore, raw: DynamoClient) -> None:
    sid = await store.create(large())
    head = await raw_item(raw, store, sid)
    assert head is not None
    assert await store.destroy(sid) is True
    assert await raw_item(raw, store, sid) is None
    assert await get_raw(raw, store, head["dref"]["S"]) is None
    assert await store.destroy(sid) is False


async def test_a_lost_data_item_reads_as_no_session(
    store: SessionStore, raw: DynamoClient, caplog: pytest.LogCaptureFixture
) -> None:
    sid = await store.create(large())
    head = await raw_item(raw, store, sid)
    assert head is not None
    await raw.call("DeleteItem", store.requests.delete(head["dref"]["S"]))
    with caplog.at_level(logging.WARNING, logger="cyclicsess"):
        assert await store.get(sid) is None
    assert "data item is gone" in caplog.text


async def test_a_long_lived_session_renews_its_data_item(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(ttl=dt.timedelta(hours=1), touch_interval=dt.timedelta(minutes=1))
    data = large()
    sid = await store.create(data)
    first = await raw_item(raw, store, sid)
    assert first is not None
    renewals = 0
    for _ in range(60):  # 60 half-hour steps: 30 hours, longer than the data item's day
        clock.advance(HOUR / 2)
        record = await store.get(sid)
        assert record is not None and record.data == data
        sent = store.client.requests_sent
        assert await store.touch(record) is True
        renewals += store.client.requests_sent - sent > 1
        head = await raw_item(raw, store, sid)
        data_item = await data_item_of(raw, store, sid)
        assert head is not None and data_item is not None
        assert int(data_item["expires"]["N"]) == int(head["dexp"]["N"])
        assert int(head["dexp"]["N"]) >= int(head["expires"]["N"]) + HOUR
    assert head["dref"] == first["dref"]  # renewed, never rewritten
    assert 1 <= renewals <= 2


async def test_compressible_data_is_stored_compressed(
    store: SessionStore, raw: DynamoClient
) -> None:
    data = {"draft": "the quick brown fox jumps over the lazy dog. " * 200}  # 9 KB
    sid = await store.create(data)
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" in head  # compressed to fit the head
    blob = base64.b64decode(head["data"]["B"])
    assert blob.startswith(b"\x00z") and len(blob) < len(store.codec.encode(data)) / 10
    record = await store.get(sid)
    assert record is not None and record.data == data


async def test_items_written_before_compression_still_read(
    store: SessionStore, raw: DynamoClient
) -> None:
    data = {"draft": "the quick brown fox jumps over the lazy dog. " * 200}
    sid = await store.create({"n": 1})
    await plant_blob(raw, store, sid, store.codec.encode(data))
    record = await store.get(sid)
    assert record is not None and record.data == data


async def test_a_decompression_bomb_reads_as_no_session(
    store: SessionStore, raw: DynamoClient, caplog: pytest.LogCaptureFixture
) -> None:
    sid = await store.create({"n": 1})
    bomb = compressed(b"\x00" * 200_000_000)  # 200 MB in about 200 KB
    assert len(bomb) < 300_000
    await plant_blob(raw, store, sid, bomb)
    with caplog.at_level(logging.WARNING, logger="cyclicsess"):
        assert await store.get(sid) is None
    assert "inflate beyond" in caplog.text


async def test_json_sessions_stay_plain_text(make_store: StoreFactory, raw: DynamoClient) -> None:
    store = await make_store(codec=JsonCodec())
    data = {"draft": "the quick brown fox jumps over the lazy dog. " * 200}
    sid = await store.create(data)
    data_item = await data_item_of(raw, store, sid)  # too large for a head, never compressed
    assert data_item is not None and data_item["data"]["S"].startswith('{"draft"')
    record = await store.get(sid)
    assert record is not None and record.data == data


async def test_without_separate_data_a_large_session_is_one_item(
    make_store: StoreFactory, raw: DynamoClient
) -> None:
    store = await make_store(separate_large_data=False)
    data = large(5_000)
    sid = await store.create(data)
    head = await raw_item(raw, store, sid)
    assert head is not None and "data" in head and "dref" not in head
    record = await store.get(sid)
    assert record is not None and record.data == data


async def test_regenerate_moves_large_data_and_keeps_the_guarantees(
    store: SessionStore, raw: DynamoClient
) -> None:
    data = large()
    sid = await store.create(data)
    old_head = await raw_item(raw, store, sid)
    assert old_head is not None
    moved = await store.regenerate(sid)  # same data: the new head takes over the data item
    new_head = await raw_item(raw, store, moved)
    assert new_head is not None and new_head["dref"] == old_head["dref"]
    assert await store.get(sid) is None
    record = await store.get(moved)
    assert record is not None and record.data == data
    login = {**data, "user": "grace"}
    again = await store.regenerate(moved, data=login)
    record = await store.get(again)
    assert record is not None and record.data == login
    assert await store.destroy(again) is True
    assert await store.get(moved) is None and await store.get(sid) is None


@pytest.mark.servers("dynalite")  # it reports consumed capacity as DynamoDB bills it
@pytest.mark.parametrize("size", [2_000, 20_000, 200_000])
async def test_a_touch_costs_one_write_unit_whatever_the_size(
    make_store: StoreFactory, clock: FakeClock, size: int
) -> None:
    separate = await make_store(touch_interval=dt.timedelta(0))
    inline = await make_store(touch_interval=dt.timedelta(0), separate_large_data=False)
    costs = {}
    for name, store in {"separate": separate, "inline": inline}.items():
        sid = await store.create(large(size))
        clock.advance(1)
        store.client.measure_capacity = True
        store.client.capacity_used.clear()
        assert await store.touch(sid) is True
        costs[name] = store.client.capacity_used["UpdateItem"]
        store.client.measure_capacity = False
    assert costs["separate"] == 1
    assert costs["inline"] >= size / 1024  # what a touch cost before


@pytest.mark.servers("dynalite")
async def test_what_a_login_writes(make_store: StoreFactory) -> None:
    store = await make_store()
    client = store.client
    small = await store.create({"cart": ["book"]})
    client.measure_capacity = True
    sent = client.requests_sent
    moved = await store.regenerate(small, data={"cart": ["book"], "user": "ada"})
    assert client.requests_sent - sent == 2  # the old item ends, the new one is put
    assert client.capacity_used == {"UpdateItem": 1, "PutItem": 1}
    client.capacity_used.clear()
    assert await store.destroy(moved) is True
    large_sid = await store.create(large())
    client.capacity_used.clear()
    sent = client.requests_sent
    await store.regenerate(large_sid, data={**large(), "user": "ada"})
    assert client.requests_sent - sent == 3  # and the new data's own item first
    assert client.capacity_used["UpdateItem"] == 1  # the old head is small too
    assert client.capacity_used["PutItem"] == 1 + 20  # the new head, the new data (20 KB)
