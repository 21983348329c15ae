"""Sessions of a user: the index written with every data write, listed and revoked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cyclicsess import ConfigurationError, DynamoClient, SessionStore
from cyclicsess._item import EXPIRES, TOUCHED, TOUCHES, USER, USER_INDEX
from cyclicsess.aiohttp import get_session, setup
from tests.faultproxy import FaultProxy
from tests.helpers import FakeClock
from tests.integration.conftest import StoreFactory
from tests.integration.test_store import raw_item


@pytest.fixture
async def store(make_store: StoreFactory) -> SessionStore:
    return await make_store(user_key="user", secret="a-server-secret-0123456789")


async def user_attribute(raw: DynamoClient, store: SessionStore, sid: str) -> Any:
    item = await raw_item(raw, store, sid)
    assert item is not None
    return item.get(USER)


async def test_the_table_has_a_keys_only_user_index(store: SessionStore, raw: DynamoClient) -> None:
    answer = await raw.call("DescribeTable", {"TableName": store.layout.table})
    (index,) = answer["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == USER_INDEX
    assert index["KeySchema"] == [{"AttributeName": USER, "KeyType": "HASH"}]
    assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"


async def test_every_data_write_keeps_the_index_key_and_touches_leave_it(
    store: SessionStore, raw: DynamoClient, clock: FakeClock
) -> None:
    sid = await store.create({"user": "ada"})
    indexed = await user_attribute(raw, store, sid)
    assert indexed == {"S": store._hasher.user_key("ada")}
    assert "ada" not in str(indexed)  # a keyed hash, not the user name
    await store.set(sid, {"user": "ada", "cart": []})
    assert await user_attribute(raw, store, sid) == indexed
    clock.advance(store.touch_interval_s + 1)
    before = await raw_item(raw, store, sid)
    assert await store.touch(sid) is True
    after = await raw_item(raw, store, sid)
    assert after is not None and before is not None
    renewed = (EXPIRES, TOUCHED, TOUCHES)  # a touch writes no indexed attribute
    assert {k: v for k, v in after.items() if k not in renewed} == {
        k: v for k, v in before.items() if k not in renewed
    }
    await store.set(sid, {"cart": []})  # logged out, session kept
    assert await user_attribute(raw, store, sid) is None
    moved = await store.regenerate(sid, data={"user": "bob"})
    assert await user_attribute(raw, store, moved) == {"S": store._hasher.user_key("bob")}


async def test_sessions_of_lists_exactly_the_live_sessions_of_the_user(
    store: SessionStore, clock: FakeClock
) -> None:
    ada = [await store.create({"user": "ada", "n": n}) for n in range(3)]
    await store.create({"user": "bob"})
    await store.create({"cart": ["no user"]})
    await store.destroy(ada[0])
    expiring = await store.create({"user": "ada", "n": 9})
    clock.advance(store.ttl_s - 10)
    await store.touch(ada[1])  # ada[1] lives on
    clock.advance(20)  # ada[2] and expiring have ended
    await store.touch(ada[1])
    records = await store.sessions_of("ada")
    assert [r.storage_key for r in records] == [store.storage_key(ada[1])]
    assert records[0].data == {"user": "ada", "n": 1}
    assert records[0].id == ""  # ids are never stored
    assert store.storage_key(expiring) not in {r.storage_key for r in records}
    assert await store.sessions_of("nobody") == []


async def test_revoke_user_ends_all_but_the_kept_session_and_their_cookies_get_nothing(
    store: SessionStore,
) -> None:
    app = web.Application()
    setup(app, store)

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text=str((await get_session(request)).get("user")))

    app.router.add_get("/", whoami)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        sids = [await store.create({"user": "ada", "device": n}) for n in range(4)]
        other = await store.create({"user": "bob"})
        assert await store.revoke_user("ada", keep=sids[0]) == 3
        for sid in sids:
            response = await client.get("/", headers={"Cookie": f"session={sid}"})
            assert await response.text() == ("ada" if sid == sids[0] else "None")
        assert await store.get(other) is not None
        assert await store.revoke_user("ada") == 1
        assert await store.sessions_of("ada") == []
    finally:
        await client.close()


async def test_a_revocation_spares_a_session_that_changed_user_meanwhile(
    store: SessionStore,
) -> None:
    sid = await store.create({"user": "ada"})
    await store.set(sid, {"user": "carol"})  # the index may still list it under ada
    assert await store.revoke_user("ada") == 0
    assert await store.get(sid) is not None


@pytest.mark.parametrize(
    "user",
    ["ada@example.com", "名前 with spaces; and = signs", "x" * 10_000, 4815162342, "-1"],
)
async def test_any_user_id_works(store: SessionStore, user: Any) -> None:
    sid = await store.create({"user": user})
    records = await store.sessions_of(user)
    assert [r.data["user"] for r in records] == [user]
    assert await store.revoke_user(user) == 1
    assert await store.get(sid) is None


async def test_without_a_user_key_there_is_no_index(make_store: StoreFactory) -> None:
    store = await make_store()
    sid = await store.create({"user": "ada"})
    assert await store.get(sid) is not None
    with pytest.raises(ConfigurationError, match="user_key"):
        await store.sessions_of("ada")


@pytest.mark.servers("moto")  # dynalite cannot add an index to a table
async def test_ensure_table_adds_the_index_to_an_existing_table(
    make_store: StoreFactory, raw: DynamoClient
) -> None:
    plain = await make_store()
    sid = await plain.create({"user": "ada"})
    indexed = await make_store(plain.layout.table, user_key="user")
    answer = await raw.call("DescribeTable", {"TableName": plain.layout.table})
    assert [i["IndexName"] for i in answer["Table"]["GlobalSecondaryIndexes"]] == [USER_INDEX]
    await indexed.set(sid, {"user": "ada", "n": 1})  # a data write indexes it
    assert [r.data["n"] for r in await indexed.sessions_of("ada")] == [1]


@pytest.mark.servers("dynalite")
async def test_a_server_that_cannot_add_the_index_says_so(make_store: StoreFactory) -> None:
    plain = await make_store()
    with pytest.raises(ConfigurationError, match="cannot add one to an existing table"):
        await make_store(plain.layout.table, user_key="user")


async def test_listing_many_sessions_pages_and_batches(store: SessionStore, server: Any) -> None:
    async with FaultProxy(server.url) as proxy:
        counting = SessionStore(
            store.layout.table,
            endpoint_url=proxy.url,
            user_key="user",
            secret="a-server-secret-0123456789",
            clock=store.clock,
        )
        for n in range(130):
            await store.create({"user": "ada", "n": n})
        records = await counting.sessions_of("ada")
        await counting.close()
    assert sorted(r.data["n"] for r in records) == list(range(130))
    assert proxy.count("BatchGetItem") >= 2  # 100 keys a request at most
    assert records == sorted(records, key=lambda r: r.created_at, reverse=True)
    assert all(
        r.expires_at > dt.datetime.fromtimestamp(store.clock(), dt.timezone.utc) for r in records
    )
