"""The store's semantics against real servers: lifetimes, touch, versions, no resurrection."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from cyclicsess import (
    ConfigurationError,
    DynamoClient,
    EncodeError,
    JsonCodec,
    SessionConflict,
    SessionNotFound,
    SessionStore,
)
from cyclicsess._bulk import pages
from cyclicsess._item import StoredItem
from tests.helpers import FakeClock
from tests.integration.conftest import StoreFactory

DAY = 86_400


async def raw_item(raw: DynamoClient, store: SessionStore, sid: str) -> dict[str, Any] | None:
    answer = await raw.call(
        "GetItem",
        {
            "TableName": store.layout.table,
            "Key": store.layout.key(store.storage_key(sid)),
            "ConsistentRead": True,
        },
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


async def stored_blob(raw: DynamoClient, store: SessionStore, stored: StoredItem) -> bytes | None:
    """A head's stored bytes: its own, or its data item's (None if that is gone)."""
    if stored.data_ref is None:
        return stored.blob
    answer = await raw.call("GetItem", store.requests.read(stored.data_ref, consistent=True))
    item = answer.get("Item")
    return None if item is None else store.layout.parse_data(item)


async def test_create_then_get_round_trips(store: SessionStore, clock: FakeClock) -> None:
    data = {"user": "ada", "at": dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc), "n": [1, 2]}
    sid = await store.create(data)
    record = await store.get(sid)
    assert record is not None
    assert record.id == sid
    assert record.data == data
    assert record.version == 1
    assert record.expires_at.timestamp() == int(clock.now + DAY)
    assert abs(record.created_at.timestamp() - clock.now) < 1


async def test_unknown_and_malformed_ids_read_as_none_without_a_request(
    store: SessionStore,
) -> None:
    sent = store.client.requests_sent
    for sid in ["", "x", "x" * 1_000_000, "é" * 43, "a" * 42 + "\x00", "a" * 42 + "."]:
        assert await store.get(sid) is None
        assert await store.touch(sid) is False
        await store.destroy(sid)
        with pytest.raises(SessionNotFound):
            await store.set(sid, {"a": 1})
    assert store.client.requests_sent == sent
    assert await store.get("A" * 43) is None  # well formed, never issued


async def test_set_bumps_the_version_and_renews(store: SessionStore, clock: FakeClock) -> None:
    sid = await store.create({"n": 0})
    clock.advance(100)
    assert await store.set(sid, {"n": 1}) == 2
    assert await store.set(sid, {"n": 2}, version=2) == 3
    record = await store.get(sid)
    assert record is not None
    assert (record.data, record.version) == ({"n": 2}, 3)
    assert record.expires_at.timestamp() == int(clock.now + DAY)


async def test_stale_version_is_a_conflict_and_writes_nothing(store: SessionStore) -> None:
    sid = await store.create({"n": 0})
    await store.set(sid, {"n": 1}, version=1)
    with pytest.raises(SessionConflict) as info:
        await store.set(sid, {"n": "lost?"}, version=1)
    assert (info.value.expected_version, info.value.current_version) == (1, 2)
    record = await store.get(sid)
    assert record is not None and record.data == {"n": 1}


async def test_set_and_touch_after_destroy_recreate_nothing(
    store: SessionStore, raw: DynamoClient, clock: FakeClock
) -> None:
    sid = await store.create({"n": 0})
    await store.destroy(sid)
    await store.destroy(sid)  # idempotent
    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 1})
    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 1}, version=1)
    clock.advance(60)
    assert await store.touch(sid) is False
    assert await store.touch(sid) is False
    assert await raw_item(raw, store, sid) is None
    with pytest.raises(SessionNotFound):
        await store.regenerate(sid)


async def test_set_and_touch_after_expiry_renew_nothing(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(ttl=dt.timedelta(minutes=10), keep_expired=True)
    sid = await store.create({"n": 0})
    record = await store.get(sid)
    assert record is not None
    clock.advance(600)
    assert await store.get(sid) is None  # expires <= now
    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 1})
    assert await store.touch(sid) is False
    assert await store.touch(record) is False
    item = await raw_item(raw, store, sid)
    assert item is not None  # kept, as asked, but not renewed
    assert int(item["expires"]["N"]) == int(record.expires_at.timestamp())
    assert item["ver"]["N"] == "1"


async def test_expired_items_are_deleted_on_read_unless_kept(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(ttl=dt.timedelta(seconds=30))
    kept = await make_store(ttl=dt.timedelta(seconds=30), keep_expired=True)
    sid = await store.create({"a": 1})
    kept_sid = await kept.create({"a": 1})
    clock.advance(29)
    assert await store.get(sid) is not None
    clock.advance(1)
    assert await store.get(sid) is None
    assert await kept.get(kept_sid) is None
    assert await raw_item(raw, store, sid) is None
    assert await raw_item(raw, kept, kept_sid) is not None


async def test_touch_is_throttled_and_never_changes_data(
    make_store: StoreFactory, raw: DynamoClient, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(seconds=30))
    sid = await store.create({"cart": ["book"]})
    record = await store.get(sid)
    assert record is not None
    clock.advance(29)
    sent = store.client.requests_sent
    assert await store.touch(record) is False  # within touch_interval (30 s): no request
    assert store.client.requests_sent == sent
    assert await store.touch(sid) is False  # by id: one read, no write
    assert store.client.requests_sent == sent + 1
    clock.advance(1)
    assert await store.touch(record) is True
    touched = await store.get(sid)
    assert touched is not None
    assert touched.expires_at.timestamp() == int(clock.now + DAY)
    assert (touched.data, touched.version) == (record.data, record.version)
    assert touched.touched_at > record.touched_at
    assert await store.touch(touched) is False
    item = await raw_item(raw, store, sid)
    assert item is not None and item["ver"]["N"] == "1"


async def test_default_touch_interval_is_a_twentieth_of_the_ttl(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(ttl=dt.timedelta(minutes=10))
    assert store.touch_interval_s == 30
    sid = await store.create({})
    clock.advance(29)
    assert await store.touch(sid) is False
    clock.advance(1)
    assert await store.touch(sid) is True
    assert (await make_store(store.layout.table)).touch_interval_s == 72 * 60  # ttl: 1 day


async def test_touch_interval_zero_writes_every_time_without_a_read(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(0))
    sid = await store.create({})
    sent = store.client.requests_sent
    assert await store.touch(sid) is True
    assert await store.touch(sid) is True
    assert store.client.requests_sent == sent + 2


async def test_ttl_measured_from_the_last_touch(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(ttl=dt.timedelta(minutes=5), touch_interval=dt.timedelta(minutes=1))
    sid = await store.create({})
    for _ in range(10):  # 40 minutes of activity, one request every 4 minutes
        clock.advance(240)
        record = await store.get(sid)
        assert record is not None
        await store.touch(record)
    clock.advance(299)
    assert await store.get(sid) is not None
    clock.advance(1)
    assert await store.get(sid) is None


async def test_absolute_lifetime_ends_even_an_active_session(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(
        ttl=dt.timedelta(minutes=10),
        touch_interval=dt.timedelta(0),
        absolute_lifetime=dt.timedelta(minutes=30),
    )
    sid = await store.create({"n": 0})
    for _ in range(5):
        clock.advance(5 * 60)
        assert await store.touch(sid) is True
    record = await store.get(sid)
    assert record is not None
    assert record.expires_at.timestamp() == int(record.created_at.timestamp() + 30 * 60)
    clock.advance(5 * 60)  # 30 minutes after creation
    assert await store.get(sid) is None
    assert await store.touch(sid) is False
    with pytest.raises(SessionNotFound):
        await store.set(sid, {"n": 1})


async def test_regenerate_moves_the_data_and_kills_the_old_id(
    store: SessionStore, raw: DynamoClient, clock: FakeClock
) -> None:
    sid = await store.create({"user": "ada"})
    await store.set(sid, {"user": "ada", "role": "admin"})
    clock.advance(10)
    new_sid = await store.regenerate(sid)
    assert new_sid != sid
    assert await store.get(sid) is None
    assert await raw_item(raw, store, sid) is None
    record = await store.get(new_sid)
    assert record is not None
    assert record.data == {"user": "ada", "role": "admin"}
    assert record.version == 1
    assert record.created_at.timestamp() == int(clock.now - 10)  # carried over


async def test_storage_keys_never_contain_the_id(
    make_store: StoreFactory, raw: DynamoClient
) -> None:
    store = await make_store(secret="s" * 32)
    sids = [await store.create({"i": i}) for i in range(5)]
    dump = str([item async for item in pages(raw, "Scan", {"TableName": store.layout.table})])
    assert len(dump) > 200
    for sid in sids:
        assert sid not in dump
        assert await store.get(sid) is not None
    other_secret = await make_store(store.layout.table, secret="t" * 32)
    assert await other_secret.get(sids[0]) is None


async def test_unsupported_value_fails_before_anything_is_written(store: SessionStore) -> None:
    sid = await store.create({"n": 1})
    sent = store.client.requests_sent
    with pytest.raises(EncodeError, match=r"session\['when'\]: unsupported type set"):
        await store.set(sid, {"when": {1}})
    with pytest.raises(EncodeError):
        await store.create({"x": object()})
    assert store.client.requests_sent == sent
    record = await store.get(sid)
    assert record is not None and record.data == {"n": 1}


async def test_json_codec_and_single_table_keys(make_store: StoreFactory) -> None:
    store = await make_store(codec=JsonCodec(), hash_key="pk", range_key="sk", key_prefix="s#")
    sid = await store.create({"a": [1, "two"]})
    assert await store.set(sid, {"a": [3]}, version=1) == 2
    record = await store.get(sid)
    assert record is not None and record.data == {"a": [3]}
    assert store.storage_key(sid).startswith("s#")
    await store.destroy(sid)
    assert await store.get(sid) is None


async def test_ensure_table_is_idempotent_and_purge_deletes_only_expired(
    store: SessionStore, raw: DynamoClient, clock: FakeClock
) -> None:
    await store.ensure_table()
    old = [await store.create({"old": i}) for i in range(3)]
    clock.advance(DAY - 1)
    young = await store.create({"young": True})
    clock.advance(1)  # the old ones just expired: within the grace, kept for now
    assert await store.purge_expired() == 0
    assert await store.purge_expired(grace=dt.timedelta(0)) == 3
    assert await store.purge_expired(grace=dt.timedelta(0)) == 0
    for sid in old:
        assert await raw_item(raw, store, sid) is None
    assert await store.get(young) is not None


async def test_from_env_reads_the_cyclic_table_variable(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch, server: Any
) -> None:
    monkeypatch.setenv("CYCLIC_DB", store.layout.table)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    sid = await store.create({"via": "env"})
    async with SessionStore.from_env() as from_env:
        assert from_env.client.endpoint_url.rstrip("/") == server.url
        record = await from_env.get(sid)
    assert record is not None and record.data == {"via": "env"}


async def test_ensure_table_enables_ttl_where_the_server_can(
    store: SessionStore, raw: DynamoClient, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cyclicsess"):
        await store.ensure_table()
    table = store.layout.table
    if server.name == "moto":
        answer = await raw.call("DescribeTimeToLive", {"TableName": table})
        assert answer["TimeToLiveDescription"] == {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": "expires",
        }
        assert not caplog.records
    else:  # dynalite has no TTL API: a warning, not an error
        assert "no TTL API" in caplog.text
    described = await raw.call("DescribeTable", {"TableName": table})
    assert described["Table"]["TableStatus"] == "ACTIVE"
    assert described["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_ensure_table_refuses_a_table_with_other_keys(
    store: SessionStore, make_store: StoreFactory
) -> None:
    with pytest.raises(ConfigurationError, match="key schema"):
        await make_store(store.layout.table, hash_key="pk", range_key="sk")
