"""The aiohttp-session storage end to end: aiohttp-session's own API, a real server."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cyclicsess import DynamoClient, RetryPolicy, SessionStore, StoreUnavailable
from cyclicsess.contrib.aiohttp_session import DynamoDBStorage
from tests.helpers import FakeClock, closed_port, response_cookie
from tests.integration.conftest import StoreFactory

COOKIE = "AIOHTTP_SESSION"

# aiohttp-session 2.12 keys the request with plain strings; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def visit(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session["visits"] = session.get("visits", 0) + 1
    return web.Response(text=str(session["visits"]))


async def peek(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    return web.json_response({"data": dict(session), "new": session.new})


async def created(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    return web.json_response(session.created)


async def nothing(request: web.Request) -> web.Response:
    return web.Response(text="no session asked for")


async def browse(request: web.Request) -> web.Response:
    await aiohttp_session.get_session(request)
    return web.Response(text="looked, stored nothing")


async def fresh(request: web.Request) -> web.Response:
    await aiohttp_session.new_session(request)
    return web.Response(text="a new session, left empty")


async def login(request: web.Request) -> web.Response:
    session = await aiohttp_session.new_session(request)
    session["user"] = request.query.get("name", "ada")
    raise web.HTTPFound("/peek")


async def logout(request: web.Request) -> web.Response:
    (await aiohttp_session.get_session(request)).invalidate()
    return web.Response(text="bye")


async def logout_with_flash(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session.invalidate()
    session["flash"] = "logged out"
    return web.Response(text="bye")


async def add_to_cart(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session.setdefault("cart", []).append(request.query["item"])  # in place: no __setitem__
    return web.Response(text="added")


async def slow_visit(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    visits = session.get("visits", 0)
    await asyncio.sleep(0.05)  # let concurrent requests overlap
    session["visits"] = visits + 1
    return web.Response(text=str(visits + 1))


ROUTES = {
    "/logout-flash": logout_with_flash,
    "/visit": visit,
    "/peek": peek,
    "/created": created,
    "/nothing": nothing,
    "/browse": browse,
    "/fresh": fresh,
    "/login": login,
    "/logout": logout,
    "/cart": add_to_cart,
    "/slow-visit": slow_visit,
}


@web.middleware
async def store_errors_as_503(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """What an app adds, outside aiohttp-session's middleware, to answer store failures."""
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        return web.Response(status=503, text=type(exc).__name__)


ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(make_store: StoreFactory) -> AsyncIterator[ClientFactory]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def factory(
        store: SessionStore | None = None, *, catch_errors: bool = False, **options: Any
    ) -> TestClient[web.Request, web.Application]:
        app = web.Application()
        if catch_errors:
            app.middlewares.append(store_errors_as_503)
        aiohttp_session.setup(app, DynamoDBStorage(store or await make_store(), **options))
        for path, handler in ROUTES.items():
            app.router.add_get(path, handler)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def set_cookie(response: Any, name: str = COOKIE) -> Any:
    return response_cookie(response, name)


def cookie_sid(client: TestClient[web.Request, web.Application]) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value


async def test_a_visitor_who_stores_nothing_gets_no_cookie_and_no_write(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    sent = store.client.requests_sent
    for path in ("/nothing", "/browse", "/peek", "/fresh"):
        response = await client.get(path)
        assert response.status == 200
        assert set_cookie(response) is None
    assert store.client.requests_sent == sent  # no cookie, so not even a read


async def test_login_sets_a_cookie_with_the_right_flags(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store(ttl=dt.timedelta(hours=2))
    client = await make_client(store)
    response = await client.get("/login?name=ada", allow_redirects=False)
    assert response.status == 302
    cookie = set_cookie(response)
    assert cookie is not None
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == "7200"  # the store's ttl
    assert not cookie["secure"]  # plain HTTP
    assert store.storage_key(cookie.value) != cookie.value
    record = await store.get(cookie.value)
    assert record is not None and record.data == {"user": "ada"}


async def test_cookie_options_are_honoured(make_client: ClientFactory) -> None:
    client = await make_client(
        cookie_name="sid", max_age=600, secure=True, samesite="Strict", path="/app"
    )
    cookie = set_cookie(await client.get("/visit"), "sid")
    assert cookie["max-age"] == "600"
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/app"


async def test_login_changes_the_id_and_kills_the_old_one(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    before = cookie_sid(client)
    response = await client.get("/login")
    assert await response.json() == {"data": {"user": "ada"}, "new": False}
    after = cookie_sid(client)
    assert after != before
    assert await store.get(before) is None
    record = await store.get(after)
    assert record is not None and record.data == {"user": "ada"}  # new_session starts empty


async def test_an_empty_new_session_deletes_the_old_one_and_expires_the_cookie(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    before = cookie_sid(client)
    cookie = set_cookie(await client.get("/fresh"))
    assert cookie is not None and cookie.value == "" and cookie["max-age"] == "0"
    assert await store.get(before) is None


async def test_counter_persists_across_requests_and_app_instances(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    for expected in range(1, 4):
        assert await (await client.get("/visit")).text() == str(expected)
    sid = cookie_sid(client)
    other_store = await make_store(store.layout.table)  # a new process on the same table
    other = await make_client(other_store)
    other.session.cookie_jar.update_cookies({COOKIE: sid})
    assert await (await other.get("/visit")).text() == "4"
    assert cookie_sid(other) == sid


async def test_created_is_the_items_creation_time(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    clock = FakeClock(start=1_700_000_000.5)  # far from time.time(), which Session uses
    client = await make_client(await make_store(clock=clock))
    await client.get("/visit")
    clock.advance(100)
    await client.get("/visit")  # a write does not move it
    assert await (await client.get("/created")).json() == 1_700_000_000


async def test_an_active_session_outlives_max_age_counted_from_creation(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    # aiohttp-session's Session drops data older than max_age since `created`;
    # here the store's ttl since the last write decides alone.
    clock = FakeClock(start=time.time() - 3 * 3600)  # created three hours ago
    client = await make_client(await make_store(ttl=dt.timedelta(hours=1), clock=clock))
    for expected in range(1, 8):
        assert await (await client.get("/visit")).text() == str(expected)
        clock.advance(25 * 60)


async def test_logout_deletes_the_item_and_expires_the_cookie(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/login")
    sid = cookie_sid(client)
    response = await client.get("/logout")
    cookie = set_cookie(response)
    assert cookie is not None and cookie.value == "" and cookie["max-age"] == "0"
    assert await store.get(sid) is None
    assert (await (await client.get("/peek")).json()) == {"data": {}, "new": True}


async def test_in_place_changes_to_nested_values_are_saved(make_client: ClientFactory) -> None:
    client = await make_client()
    await client.get("/cart?item=book")
    await client.get("/cart?item=pen")
    assert (await (await client.get("/peek")).json())["data"] == {"cart": ["book", "pen"]}


async def test_unchanged_session_is_only_touched_as_throttled(
    make_store: StoreFactory, make_client: ClientFactory, clock: FakeClock
) -> None:
    store = await make_store(touch_interval=dt.timedelta(seconds=30))
    client = await make_client(store)
    await client.get("/visit")
    sid = cookie_sid(client)
    sent = store.client.requests_sent
    response = await client.get("/peek")
    assert set_cookie(response) is None  # touch skipped inside touch_interval
    assert store.client.requests_sent == sent + 1  # the read, no write
    before = await store.get(sid)
    assert before is not None
    clock.advance(31)
    sent = store.client.requests_sent
    cookie = set_cookie(await client.get("/peek"))
    assert store.client.requests_sent == sent + 2  # the read and the touch
    assert cookie is not None and cookie.value == sid  # Max-Age renewed
    after = await store.get(sid)
    assert after is not None
    assert after.version == before.version  # a touch is no data write
    assert after.expires_at > before.expires_at


async def test_forged_or_malformed_cookies_get_a_fresh_session(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    sid = cookie_sid(client)
    forgeries = [sid[:-1] + ("A" if sid[-1] != "A" else "B"), "x" * 43, "'; DROP", "é" * 10]
    for forged in forgeries:
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({COOKIE: forged})
        sent = store.client.requests_sent
        response = await client.get("/peek")
        assert await response.json() == {"data": {}, "new": True}
        cookie = set_cookie(response)
        assert cookie is not None and cookie.value == ""  # the stale cookie is expired
        if len(forged) != 43:
            assert store.client.requests_sent == sent  # refused before any read
    record = await store.get(sid)
    assert record is not None and record.data == {"visits": 1}  # the real one is untouched


async def test_the_stored_data_is_only_the_users_dict(
    make_store: StoreFactory, make_client: ClientFactory, raw: DynamoClient
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    await client.get("/visit")
    sid = cookie_sid(client)
    answer = await raw.call(
        "GetItem",
        {"TableName": store.layout.table, "Key": store.layout.key(store.storage_key(sid))},
    )
    data = store.codec.decode(base64.b64decode(answer["Item"]["data"]["B"]))
    assert data == {"visits": 2}  # no aiohttp-session "created", no "session" wrapper


@pytest.mark.servers("dynalite")  # needs atomic conditional writes
async def test_concurrent_saves_lose_no_acknowledged_update(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    responses = await asyncio.gather(*(client.get("/slow-visit") for _ in range(8)))
    ok = [r for r in responses if r.status == 200]
    refused = [r for r in responses if r.status == 409]
    assert len(ok) + len(refused) == 8 and ok and refused
    final = (await (await client.get("/peek")).json())["data"]["visits"]
    assert final == 1 + len(ok)  # every acknowledged increment is stored, no other


async def test_store_errors_propagate_to_the_app(make_client: ClientFactory) -> None:
    budget = RetryPolicy(budget=dt.timedelta(seconds=0.3))

    def gone() -> SessionStore:
        return SessionStore("t", endpoint_url=f"http://127.0.0.1:{closed_port()}", retry=budget)

    plain = await make_client(gone())
    assert (await plain.get("/visit")).status == 500  # aiohttp-session has no error policy
    caught = await make_client(gone(), catch_errors=True)
    response = await caught.get("/visit")
    assert response.status == 503 and await response.text() == "StoreUnavailable"
    caught.session.cookie_jar.update_cookies({COOKIE: "A" * 43})
    response = await caught.get("/peek")  # the load fails this time
    assert response.status == 503 and set_cookie(response) is None


def test_cyclicsess_imports_without_aiohttp_session() -> None:
    code = "import sys, cyclicsess, cyclicsess.aiohttp; print('aiohttp_session' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


async def test_invalidate_then_new_data_moves_to_a_new_id(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/login?name=ada")
    old = cookie_sid(client)
    response = await client.get("/logout-flash")
    cookie = set_cookie(response)
    assert cookie is not None and cookie.value not in ("", old)
    assert await store.get(old) is None
    record = await store.get(cookie.value)
    assert record is not None and record.data == {"flash": "logged out"}
