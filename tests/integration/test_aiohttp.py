"""The aiohttp middleware end to end: aiohttp's test client, a real server, no mocked store."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cyclicsess import RetryPolicy, SessionStore
from cyclicsess.aiohttp import CookieSettings, get_session, new_session, setup
from tests.helpers import closed_port, response_cookie
from tests.integration.conftest import StoreFactory

SECRET = "cookie-signing-secret-0123456789"


async def visit(request: web.Request) -> web.Response:
    session = await get_session(request)
    session["visits"] = session.get("visits", 0) + 1
    return web.Response(text=str(session["visits"]))


async def peek(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"data": dict(session), "new": session.new})


async def nothing(request: web.Request) -> web.Response:
    return web.Response(text="no session asked for")


async def browse(request: web.Request) -> web.Response:
    await get_session(request)
    return web.Response(text="looked, stored nothing")


async def login(request: web.Request) -> web.Response:
    session = await new_session(request)
    session["user"] = request.query.get("name", "ada")
    raise web.HTTPFound("/peek")


async def logout(request: web.Request) -> web.Response:
    (await get_session(request)).invalidate()
    return web.Response(text="bye")


async def add_to_cart(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.setdefault("cart", []).append(request.query["item"])  # an in-place change
    return web.Response(text="added")


async def set_key(request: web.Request) -> web.Response:
    session = await get_session(request)
    session[request.query["key"]] = request.query["value"]
    await asyncio.sleep(0.05)  # let concurrent requests overlap
    return web.Response(text="set")


async def slow_visit(request: web.Request) -> web.Response:
    session = await get_session(request)
    visits = session.get("visits", 0)
    await asyncio.sleep(0.05)
    session["visits"] = visits + 1
    return web.Response(text=str(visits + 1))


async def stream(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session["streamed"] = True
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"chunk one,")
    await response.write(b"chunk two")
    await response.write_eof()
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    session = await get_session(request)
    session["ws"] = "connected"
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("hello")
    await ws.close()
    return ws


async def boom(request: web.Request) -> web.Response:
    session = await get_session(request)
    session["charged"] = True
    raise ValueError("the handler failed")


async def slow_sudo(request: web.Request) -> web.Response:
    await get_session(request)
    await asyncio.sleep(0.2)  # a logout in another tab lands meanwhile
    session = await new_session(request)
    session["sudo"] = True
    return web.Response(text="sudo")


async def slow_set(request: web.Request) -> web.Response:
    session = await get_session(request)
    await asyncio.sleep(0.2)
    session["late"] = True
    return web.Response(text="late")


ROUTES = {
    "/boom": boom,
    "/slow-sudo": slow_sudo,
    "/slow-set": slow_set,
    "/visit": visit,
    "/peek": peek,
    "/nothing": nothing,
    "/browse": browse,
    "/login": login,
    "/logout": logout,
    "/cart": add_to_cart,
    "/set": set_key,
    "/slow-visit": slow_visit,
    "/stream": stream,
    "/ws": websocket,
}

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(make_store: StoreFactory) -> AsyncIterator[ClientFactory]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def factory(
        store: SessionStore | None = None, **options: Any
    ) -> TestClient[web.Request, web.Application]:
        app = web.Application()
        setup(app, store or await make_store(), **options)
        for path, handler in ROUTES.items():
            app.router.add_get(path, handler)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def set_cookie(response: Any, name: str = "session") -> Any:
    return response_cookie(response, name)


async def test_a_visitor_who_stores_nothing_gets_no_cookie_and_no_write(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    sent = store.client.requests_sent
    for path in ("/nothing", "/browse", "/peek"):
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
    assert cookie["max-age"] == "7200"
    assert not cookie["secure"]  # plain HTTP, no trusted proxy
    assert store.storage_key(cookie.value) != cookie.value
    record = await store.get(cookie.value)
    assert record is not None and record.data == {"user": "ada"}


async def test_secure_flag_follows_https_behind_a_trusted_proxy_only(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    trusting = await make_client(store, trust_forwarded=True)
    untrusting = await make_client(store)
    headers = {"X-Forwarded-Proto": "https"}
    cookie = set_cookie(await trusting.get("/visit", headers=headers))
    assert cookie["secure"] is True
    cookie = set_cookie(await trusting.get("/visit", headers={"Forwarded": "proto=https"}))
    assert cookie["secure"] is True
    assert not set_cookie(await untrusting.get("/visit", headers=headers))["secure"]
    host = await make_client(store, cookie=CookieSettings(name="__Host-sid"))
    cookie = set_cookie(await host.get("/visit"), "__Host-sid")
    assert cookie["secure"] is True and cookie["path"] == "/" and not cookie["domain"]


async def test_browser_session_cookie_has_no_max_age(make_client: ClientFactory) -> None:
    client = await make_client(cookie=CookieSettings(persistent=False, samesite="Strict"))
    cookie = set_cookie(await client.get("/visit"))
    assert cookie["max-age"] == "" and cookie["expires"] == ""
    assert cookie["samesite"] == "Strict"


async def test_counter_persists_across_requests_and_app_instances(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    for expected in range(1, 4):
        assert await (await client.get("/visit")).text() == str(expected)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"]
    other_store = await make_store(store.layout.table)  # a new process on the same table
    other = await make_client(other_store)
    other.session.cookie_jar.update_cookies({"session": cookie.value})
    assert await (await other.get("/visit")).text() == "4"


async def test_in_place_changes_to_nested_values_are_saved(make_client: ClientFactory) -> None:
    client = await make_client()
    await client.get("/cart?item=book")
    await client.get("/cart?item=pen")
    assert (await (await client.get("/peek")).json())["data"] == {"cart": ["book", "pen"]}


async def test_unchanged_session_is_only_touched_as_throttled(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    sent = store.client.requests_sent
    response = await client.get("/peek")
    assert set_cookie(response) is None  # touch skipped inside touch_interval
    assert store.client.requests_sent == sent + 1  # the read, no write


async def test_logout_deletes_the_item_and_expires_the_cookie(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/login")
    sid = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"].value
    response = await client.get("/logout")
    cookie = set_cookie(response)
    assert cookie is not None and cookie.value == "" and cookie["max-age"] == "0"
    assert await store.get(sid) is None
    assert (await (await client.get("/peek")).json()) == {"data": {}, "new": True}


async def test_login_changes_the_id_and_kills_the_old_one(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    jar = client.session.cookie_jar
    before = jar.filter_cookies(client.make_url("/"))["session"].value
    await client.get("/login")
    after = jar.filter_cookies(client.make_url("/"))["session"].value
    assert after != before
    assert await store.get(before) is None
    record = await store.get(after)
    assert record is not None and record.data == {"visits": 1, "user": "ada"}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_forged_or_tampered_cookies_get_a_fresh_session(
    signed: bool, make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store, signing_secret=SECRET if signed else None)
    await client.get("/visit")
    real = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"].value
    assert ("." in real) is signed
    sid = real.split(".")[0]
    forgeries = [sid[:-1] + ("A" if sid[-1] != "A" else "B"), "x" * 43, "'; DROP", "é" * 10]
    if signed:
        forgeries += [sid, real[:-2] + "AA", sid + "." + "A" * 43]
    for forged in forgeries:
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"session": forged})
        sent = store.client.requests_sent
        assert (await (await client.get("/peek")).json()) == {"data": {}, "new": True}
        if signed or len(forged) != 43:
            assert store.client.requests_sent == sent  # refused before any read
    record = await store.get(sid)
    assert record is not None and record.data == {"visits": 1}  # the real one is untouched


@pytest.mark.servers("dynalite")  # needs atomic conditional writes
async def test_concurrent_requests_lose_no_acknowledged_update(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    responses = await asyncio.gather(*(client.get("/slow-visit") for _ in range(8)))
    ok = [r for r in responses if r.status == 200]
    refused = [r for r in responses if r.status == 409]
    assert len(ok) + len(refused) == 8 and ok
    final = (await (await client.get("/peek")).json())["data"]["visits"]
    assert final == 1 + len(ok)  # every acknowledged increment is stored, no other


@pytest.mark.servers("dynalite")
async def test_concurrent_changes_to_different_keys_are_merged(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    await client.get("/visit")
    keys = [f"k{i}" for i in range(6)]
    responses = await asyncio.gather(*(client.get(f"/set?key={k}&value={k}") for k in keys))
    assert [r.status for r in responses] == [200] * len(keys)
    data = (await (await client.get("/peek")).json())["data"]
    assert data == {"visits": 1, **{k: k for k in keys}}


async def test_streamed_response_and_websocket_handshake_still_save(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    response = await client.get("/stream")
    assert await response.text() == "chunk one,chunk two"
    assert set_cookie(response) is not None
    assert (await (await client.get("/peek")).json())["data"] == {"streamed": True}
    client.session.cookie_jar.clear()
    async with client.ws_connect("/ws") as ws:
        assert await ws.receive_str() == "hello"
    assert (await (await client.get("/peek")).json())["data"] == {"ws": "connected"}


async def test_store_failure_is_a_clear_503_or_a_logged_warning(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    budget = RetryPolicy(budget=dt.timedelta(seconds=0.3))
    gone = SessionStore("t", endpoint_url=f"http://127.0.0.1:{closed_port()}", retry=budget)
    failing = await make_client(gone)
    response = await failing.get("/visit")
    assert response.status == 503
    assert "session store unavailable" in await response.text()
    warning = SessionStore("t", endpoint_url=f"http://127.0.0.1:{closed_port()}", retry=budget)
    lenient = await make_client(warning, on_store_error="warn")
    response = await lenient.get("/visit")
    assert response.status == 200
    assert "session save failed" in caplog.text
    lenient.session.cookie_jar.update_cookies({"session": "A" * 43})
    response = await lenient.get("/visit")
    assert response.status == 200 and set_cookie(response) is None  # nothing saved over it
    assert "session load failed" in caplog.text


async def test_a_planted_id_never_becomes_a_session(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    planted = "P" * 43  # well formed, never issued
    client.session.cookie_jar.update_cookies({"session": planted})
    response = await client.get("/visit")
    cookie = set_cookie(response)
    assert cookie is not None and cookie.value != planted
    assert await store.get(planted) is None
    record = await store.get(cookie.value)
    assert record is not None and record.data == {"visits": 1}


async def test_no_log_line_carries_a_session_id(
    make_store: StoreFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = await make_store()
    client = await make_client(store)
    with caplog.at_level(logging.DEBUG):
        await client.get("/visit")
        await client.get("/login")
        sids = {c.value for c in client.session.cookie_jar}
        await client.get("/visit")
        await client.get("/logout")
        for sid in sids:
            await store.get(sid)
            await store.touch(sid)
    assert len(caplog.records) > 3
    for sid in sids:
        assert sid not in caplog.text


async def test_a_failed_handler_saves_nothing(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/visit")
    sid = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"].value
    response = await client.get("/boom")
    assert response.status == 500
    assert set_cookie(response) is None
    record = await store.get(sid)
    assert record is not None and record.data == {"visits": 1}


async def test_login_racing_a_logout_does_not_bring_the_session_back(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/login?name=ada")
    sudo, logout = await asyncio.gather(client.get("/slow-sudo"), client.get("/logout"))
    assert logout.status == 200
    cookie = set_cookie(sudo)
    if cookie is not None and cookie.value:
        record = await store.get(cookie.value)
        assert record is not None
        assert "user" not in record.data  # the logged-out data never comes back


async def test_a_late_save_after_logout_keeps_the_newer_login_cookie(
    make_store: StoreFactory, make_client: ClientFactory
) -> None:
    store = await make_store()
    client = await make_client(store)
    await client.get("/login?name=ada")
    late = asyncio.ensure_future(client.get("/slow-set"))
    await asyncio.sleep(0.05)
    await client.get("/logout")
    await client.get("/login?name=bob", allow_redirects=False)
    response = await late
    assert response.status == 200
    assert set_cookie(response) is None  # neither a resurrection nor a deleted login
    new_sid = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"].value
    record = await store.get(new_sid)
    assert record is not None and record.data == {"user": "bob"}


async def test_logout_of_a_host_cookie_is_secure_so_browsers_accept_it(
    make_client: ClientFactory,
) -> None:
    client = await make_client(cookie=CookieSettings(name="__Host-sid"))
    response = await client.get("/visit")
    sid = set_cookie(response, "__Host-sid").value
    client.session.cookie_jar.update_cookies({"__Host-sid": sid})
    deletion = set_cookie(await client.get("/logout"), "__Host-sid")
    assert deletion is not None and deletion["max-age"] == "0"
    assert deletion["secure"] is True and deletion["path"] == "/"
