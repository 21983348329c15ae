"""One contract for every adapter: aiohttp, aiohttp-session's storage, Starlette, FastAPI, Litestar.

Each test runs against every adapter (unless marked for some) on dynalite and
moto, through the same routes (``tests/contract/apps.py``), with a real
server and a real browser-like client. The documented differences of the
aiohttp-session storage (no merging, no saves for streamed responses, no
middleware options) are asked of :class:`~tests.contract.conftest.Site`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable

import pytest

from cyclicsess import CookieSettings, RetryPolicy, SessionStore, new_session_id
from tests.contract.conftest import MIDDLEWARES, Site, SiteFactory
from tests.faultproxy import FaultProxy
from tests.helpers import FakeClock

StoreFactory = Callable[..., Awaitable[SessionStore]]
SECRET = "cookie-signing-secret-0123456789"
#: A short budget for the tests whose store fails on purpose.
GIVING_UP = RetryPolicy(budget=dt.timedelta(seconds=0.4), attempt_timeout=dt.timedelta(seconds=0.2))
HTTPS = {"X-Forwarded-Proto": "https"}


async def logged_in(site: Site, name: str = "ada") -> tuple[object, str]:
    browser = site.browser()
    response = await browser.post(f"/login?name={name}")
    assert response.status == 200, response.text
    sid = browser.cookie(site.cookie_name)
    assert sid is not None
    return browser, sid


# -- what costs nothing ---------------------------------------------------------------


async def test_a_visitor_who_stores_nothing_gets_no_cookie_and_no_write(
    site: Site, proxy: FaultProxy
) -> None:
    browser = site.browser()
    proxy.reset_counts()
    for path in ("/nothing", "/browse", "/peek"):
        response = await browser.get(path)
        assert response.status == 200
        assert response.set_cookies == []
    assert proxy.requests == []  # no cookie: not even a read


async def test_a_handler_that_never_asks_adds_no_header(site: Site) -> None:
    browser, _ = await logged_in(site)
    response = await browser.get("/nothing")
    assert response.set_cookies == []
    assert "cookie" not in response.headers.get("Vary", "").lower()
    assert "Cache-Control" not in response.headers


# -- the cookie --------------------------------------------------------------------------


async def test_login_sets_a_cookie_with_the_right_flags(
    site: Site, make_store: StoreFactory, make_site: SiteFactory
) -> None:
    store = await make_store(ttl=dt.timedelta(hours=2))
    site = await make_site(store)
    response = await site.browser().post("/login?name=ada", follow=False)
    assert response.status == 303
    cookie = response.cookie(site.cookie_name)
    assert cookie is not None
    assert cookie["httponly"] == "true"
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == "7200"
    assert "expires" in cookie  # beside Max-Age, as aiohttp-session sends it
    assert "secure" not in cookie  # plain HTTP, no trusted proxy
    record = await store.get(cookie["value"])
    assert record is not None and record.data == {"user": "ada"}
    assert store.storage_key(cookie["value"]) != cookie["value"]


@pytest.mark.adapters(*MIDDLEWARES)
async def test_over_https_the_cookie_is_a_host_cookie_behind_a_trusted_proxy_only(
    make_site: SiteFactory, store: SessionStore
) -> None:
    trusting = await make_site(store, trust_forwarded=True)
    untrusting = await make_site(store)
    response = await trusting.browser().post("/login", follow=False, headers=HTTPS)
    cookie = response.cookie("__Host-session")
    assert cookie is not None
    assert cookie["secure"] == "true" and cookie["path"] == "/" and "domain" not in cookie
    response = await untrusting.browser().post("/login", follow=False, headers=HTTPS)
    assert response.cookie("__Host-session") is None
    cookie = response.cookie("session")
    assert cookie is not None and "secure" not in cookie


@pytest.mark.adapters(*MIDDLEWARES)
async def test_a_browser_session_cookie_has_no_max_age(
    make_site: SiteFactory, store: SessionStore
) -> None:
    site = await make_site(store, cookie=CookieSettings(persistent=False))
    cookie = (await site.browser().post("/login", follow=False)).cookie("session")
    assert cookie is not None
    assert "max-age" not in cookie and "expires" not in cookie


@pytest.mark.adapters(*MIDDLEWARES)
async def test_a_host_cookie_is_expired_with_its_secure_flag(
    make_site: SiteFactory, store: SessionStore
) -> None:
    site = await make_site(store, trust_forwarded=True)
    browser = site.browser()
    login = await browser.post("/login", follow=False, headers=HTTPS)
    value = login.cookie("__Host-session")
    assert value is not None
    headers = {**HTTPS, "Cookie": f"__Host-session={value['value']}"}
    cookie = (await browser.post("/logout", headers=headers)).cookie("__Host-session")
    assert cookie is not None
    assert cookie["max-age"] == "0" and cookie["secure"] == "true"  # browsers require both


# -- data that persists ----------------------------------------------------------------


async def test_a_counter_persists_across_requests_and_app_instances(
    site: Site, make_site: SiteFactory, store: SessionStore
) -> None:
    browser = site.browser()
    for expected in range(1, 4):
        assert (await browser.get("/visit")).text == f"visits {expected}"
    other = await make_site(store)  # another process of the same app
    sid = browser.cookie(site.cookie_name)
    assert sid is not None
    again = other.browser()
    again.set_cookie(site.cookie_name, sid)
    assert (await again.get("/visit")).text == "visits 4"


async def test_in_place_changes_to_nested_values_are_saved(site: Site) -> None:
    browser = site.browser()
    await browser.get("/cart?item=book")
    await browser.get("/cart?item=pen")
    assert (await browser.get("/peek")).json()["data"] == {"cart": ["book", "pen"]}


async def test_an_unchanged_session_is_only_touched_as_throttled(
    make_store: StoreFactory, make_site: SiteFactory, proxy: FaultProxy, clock: FakeClock
) -> None:
    store = await make_store(ttl=dt.timedelta(minutes=10), touch_interval=dt.timedelta(minutes=1))
    site = await make_site(store)
    browser = site.browser()
    await browser.get("/visit")
    proxy.reset_counts()
    response = await browser.get("/peek")
    assert proxy.requests == ["GetItem"]  # read, not written: throttled
    assert response.set_cookies == []
    clock.advance(61)
    response = await browser.get("/peek")
    assert proxy.requests == ["GetItem", "GetItem", "UpdateItem"]  # a touch
    assert response.cookie(site.cookie_name) is not None  # Max-Age renewed


# -- logging in and out --------------------------------------------------------------------


async def test_login_moves_to_a_new_id_in_two_writes_and_kills_the_old_one(
    site: Site, proxy: FaultProxy
) -> None:
    browser = site.browser()
    await browser.get("/visit")
    old = browser.cookie(site.cookie_name)
    proxy.reset_counts()
    await browser.post("/login?name=ada")
    new = browser.cookie(site.cookie_name)
    assert new is not None and new != old
    writes = [op for op in proxy.requests if op in ("PutItem", "UpdateItem", "DeleteItem")]
    assert writes[:2] == ["UpdateItem", "PutItem"]  # the old ended, the new with the login
    assert await site.store.get(old or "") is None
    record = await site.store.get(new)
    assert record is not None and record.data == {"visits": 1, "user": "ada"}


async def test_login_drops_the_keys_named(site: Site, store: SessionStore) -> None:
    browser = site.browser()
    await browser.get("/set?key=csrf&value=planted-token")
    await browser.get("/set?key=theme&value=dark")
    await browser.post("/login?name=ada")
    record = await store.get(browser.cookie(site.cookie_name) or "")
    assert record is not None
    assert record.data == {"theme": "dark", "user": "ada"}  # no csrf after login


async def test_logout_deletes_the_record_and_expires_the_cookie(
    site: Site, store: SessionStore, raw: object
) -> None:
    browser, sid = await logged_in(site)
    response = await browser.post("/logout")
    cookie = response.cookie(site.cookie_name)
    assert cookie is not None and cookie["max-age"] == "0"
    assert await store.get(sid) is None
    assert browser.cookie(site.cookie_name) in (None, "")


async def test_emptying_the_session_is_a_logout(site: Site, store: SessionStore) -> None:
    browser, sid = await logged_in(site)
    response = await browser.post("/clear")
    cookie = response.cookie(site.cookie_name)
    assert cookie is not None and cookie["max-age"] == "0"
    assert await store.get(sid) is None


async def test_a_planted_id_never_becomes_a_session(site: Site, store: SessionStore) -> None:
    planted = new_session_id()  # an attacker's well-formed id, never issued
    browser = site.browser()
    browser.set_cookie(site.cookie_name, planted)
    await browser.post("/login?name=victim")
    assert browser.cookie(site.cookie_name) != planted
    assert await store.get(planted) is None


async def test_a_login_racing_a_logout_does_not_bring_the_session_back(
    site: Site, store: SessionStore
) -> None:
    browser, sid = await logged_in(site)
    other_tab = site.browser()
    other_tab.set_cookie(site.cookie_name, sid)
    sudo = asyncio.ensure_future(browser.get("/slow-sudo"))
    await asyncio.sleep(0.05)
    await other_tab.post("/logout")
    await sudo
    assert await store.get(sid) is None
    moved = browser.cookie(site.cookie_name)
    if moved and moved != sid:
        record = await store.get(moved)
        # a new session at most, never the logged-out one under any id
        assert record is None or "user" not in record.data


async def test_a_late_save_after_logout_does_not_log_anyone_back_in(
    site: Site, store: SessionStore
) -> None:
    browser, sid = await logged_in(site)
    late = asyncio.ensure_future(browser.get("/slow-set"))
    await asyncio.sleep(0.05)
    other_tab = site.browser()
    other_tab.set_cookie(site.cookie_name, sid)
    await other_tab.post("/logout")
    await late
    assert await store.get(sid) is None


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_requests_lose_no_acknowledged_update(site: Site) -> None:
    browser = site.browser()
    await browser.get("/visit")
    responses = await asyncio.gather(*(browser.get("/slow-visit") for _ in range(6)))
    acknowledged = [r for r in responses if r.status == 200]
    assert all(r.status in (200, 409) for r in responses)
    final = (await browser.get("/peek")).json()["data"]
    assert final["visits"] == 1 + len(acknowledged)


async def test_concurrent_changes_to_different_keys_are_merged(site: Site) -> None:
    browser = site.browser()
    await browser.get("/visit")
    responses = await asyncio.gather(
        browser.get("/set?key=a&value=1"), browser.get("/set?key=b&value=2")
    )
    peek = (await browser.get("/peek")).json()["data"]
    if site.merges:
        assert [r.status for r in responses] == [200, 200]
        assert peek == {"visits": 1, "a": "1", "b": "2"}
    else:  # the aiohttp-session storage refuses the second save
        assert sorted(r.status for r in responses) in ([200, 200], [200, 409])


@pytest.mark.servers("moto")  # returns the item that failed the condition
@pytest.mark.adapters(*MIDDLEWARES)
async def test_a_merge_uses_the_item_the_failed_write_met(site: Site, proxy: FaultProxy) -> None:
    browser = site.browser()
    await browser.get("/visit")
    proxy.reset_counts()
    await asyncio.gather(browser.get("/set?key=a&value=1"), browser.get("/set?key=b&value=2"))
    assert proxy.count("GetItem") == 2  # the two loads; the merge read nothing more


@pytest.mark.adapters(*MIDDLEWARES)
async def test_a_save_that_keeps_conflicting_gives_up_after_three_rounds(
    site: Site, proxy: FaultProxy
) -> None:
    browser = site.browser()
    await browser.get("/visit")
    proxy.reset_counts()
    proxy.fail_forever("condition", operation="UpdateItem")  # every save meets a newer one
    response = await browser.get("/set?key=a&value=1")
    proxy.clear()
    assert response.status == 409
    assert proxy.count("UpdateItem") == 3  # the default bound: one request, a few calls


# -- streams, WebSockets, failures -------------------------------------------------------------


async def test_streamed_responses_and_websocket_handshakes(site: Site, store: SessionStore) -> None:
    browser = site.browser()
    await browser.get("/visit")
    sid = browser.cookie(site.cookie_name) or ""
    stream = await browser.get("/stream")
    assert stream.text == "chunk one,chunk two"
    status, message = await browser.websocket("/ws")
    assert (status, message) == (101, "hello")
    record = await store.get(sid)
    assert record is not None
    if site.saves_streams:
        assert record.data == {"visits": 1, "streamed": True, "ws": "connected"}
    else:
        assert record.data == {"visits": 1}


async def test_a_failed_handler_saves_nothing(site: Site, store: SessionStore) -> None:
    browser = site.browser()
    await browser.get("/visit")
    response = await browser.get("/boom")
    assert response.status == 500
    assert response.set_cookies == []
    record = await store.get(browser.cookie(site.cookie_name) or "")
    assert record is not None and record.data == {"visits": 1}


@pytest.mark.adapters(*MIDDLEWARES)
@pytest.mark.parametrize("policy", ["fail", "warn"])
async def test_a_store_failure_is_a_503_or_a_logged_warning(
    make_site: SiteFactory,
    make_store: StoreFactory,
    proxy: FaultProxy,
    policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await make_store(retry=GIVING_UP)  # failures give up quickly
    site = await make_site(store, on_store_error=policy)
    browser = site.browser()
    await browser.get("/visit")
    proxy.fail_forever("503", operation="GetItem")
    with caplog.at_level(logging.WARNING):
        response = await browser.get("/visit")
    proxy.clear()
    if policy == "fail":
        assert response.status == 503
    else:
        assert response.status == 200 and response.text == "visits 1"
        assert any("session" in r.getMessage() for r in caplog.records)
    record = await store.get(browser.cookie(site.cookie_name) or "")
    assert record is not None and record.data == {"visits": 1}  # never saved over


@pytest.mark.adapters(*MIDDLEWARES)
@pytest.mark.parametrize("policy", ["fail", "warn"])
async def test_a_failed_login_never_saves_under_the_old_id(
    make_site: SiteFactory, make_store: StoreFactory, proxy: FaultProxy, policy: str
) -> None:
    store = await make_store(retry=GIVING_UP)  # failures give up quickly
    site = await make_site(store, on_store_error=policy)
    browser = site.browser()
    await browser.get("/set?key=csrf&value=attackers")  # a session an attacker planted
    planted = browser.cookie(site.cookie_name) or ""
    proxy.fail_forever("throttle", operation="UpdateItem")  # the move cannot happen
    response = await browser.post("/login?name=victim", follow=False)
    proxy.clear()
    record = await store.get(planted)
    assert record is not None and "user" not in record.data  # nothing under the old id
    if policy == "fail":
        assert response.status == 503
        assert response.cookie(site.cookie_name) is None
    else:
        assert response.status == 303
        cookie = response.cookie(site.cookie_name)
        assert cookie is not None and cookie["value"] != planted  # a new session
        login = await store.get(cookie["value"])
        assert login is not None and login.data == {"user": "victim"}


@pytest.mark.adapters(*MIDDLEWARES)
@pytest.mark.parametrize("policy", ["fail", "warn"])
async def test_a_logout_that_fails_expires_the_cookie_and_says_503(
    make_site: SiteFactory, make_store: StoreFactory, proxy: FaultProxy, policy: str
) -> None:
    store = await make_store(retry=GIVING_UP)  # failures give up quickly
    site = await make_site(store, on_store_error=policy)
    browser, sid = await logged_in(site)
    proxy.fail_forever("503", operation="DeleteItem")
    response = await browser.post("/logout")
    proxy.clear()
    assert response.status == 503  # in every mode: never a logout that looks done
    cookie = response.cookie(site.cookie_name)
    assert cookie is not None and cookie["max-age"] == "0"
    assert await store.get(sid) is not None  # still stored: the 503 says so


# -- cookies an attacker controls ----------------------------------------------------------


async def test_two_cookies_of_the_sessions_name_are_no_session(
    site: Site, store: SessionStore, proxy: FaultProxy
) -> None:
    _, sid = await logged_in(site, "victim")
    attacker = await store.create({"csrf": "attackers-token"})
    header = f"{site.cookie_name}={attacker}; {site.cookie_name}={sid}"
    proxy.reset_counts()
    response = await site.browser().get("/peek", headers={"Cookie": header})
    assert response.json()["data"] == {}
    assert proxy.requests == []  # not even read
    browser = site.browser()
    login = await browser.post("/login?name=victim", headers={"Cookie": header}, follow=False)
    cookie = login.cookie(site.cookie_name)
    assert cookie is not None and cookie["value"] not in (sid, attacker)
    record = await store.get(cookie["value"])
    assert record is not None and record.data == {"user": "victim"}  # nothing carried over


@pytest.mark.adapters(*MIDDLEWARES)
async def test_forged_or_tampered_cookies_are_refused_without_a_read(
    make_site: SiteFactory, store: SessionStore, proxy: FaultProxy
) -> None:
    site = await make_site(store, signing_secret=SECRET)
    browser = site.browser()
    await browser.get("/visit")
    signed = browser.cookie("session") or ""
    sid, _, signature = signed.partition(".")
    assert sid and signature
    tampered = signature[:-1] + ("B" if signature[-1] == "A" else "A")
    for forged in (sid, f"{new_session_id()}.{signature}", f"{sid}.{tampered}", "x"):
        proxy.reset_counts()
        other = site.browser()
        other.set_cookie("session", forged)
        assert (await other.get("/visit")).text == "visits 1"  # a fresh session
        assert proxy.count("GetItem") == 0


# -- caching -----------------------------------------------------------------------------------


async def test_responses_that_use_the_session_are_private(site: Site) -> None:
    browser, _ = await logged_in(site)
    response = await browser.get("/peek")
    assert "cookie" in response.headers.get("Vary", "").lower()
    assert response.headers.get("Cache-Control") == "private"
    cached = await browser.get("/cached")
    assert cached.headers.get("Cache-Control") == "public, max-age=60"  # the app's own
    assert "cookie" in cached.headers.get("Vary", "").lower()
    login = await site.browser().post("/login", follow=False)
    assert "cookie" in login.headers.get("Vary", "").lower()


# -- logs ---------------------------------------------------------------------------------------


async def test_no_log_line_carries_a_session_id(
    site: Site, caplog: pytest.LogCaptureFixture, proxy: FaultProxy
) -> None:
    with caplog.at_level(logging.DEBUG):
        browser, sid = await logged_in(site)
        await browser.get("/visit")
        proxy.fail_next(1, "500", operation="GetItem")
        await browser.get("/visit")
        await browser.post("/logout")
    ids = re.compile(r"[A-Za-z0-9_-]{43}")
    for record in caplog.records:
        assert sid not in record.getMessage()
        assert not ids.search(record.getMessage()), record.getMessage()


# -- ASGI only ------------------------------------------------------------------------------------


@pytest.mark.adapters("litestar")
async def test_litestar_set_session_replaces_the_data(site: Site, store: SessionStore) -> None:
    browser = site.browser()
    await browser.get("/visit")
    await browser.get("/replace")
    record = await store.get(browser.cookie(site.cookie_name) or "")
    assert record is not None and record.data == {"replaced": True}


@pytest.mark.adapters("starlette", "fastapi")  # Litestar: on_shutdown=[store.close]
async def test_the_store_is_closed_when_the_app_shuts_down(
    make_site: SiteFactory, store: SessionStore
) -> None:
    site = await make_site(store)
    await site.browser().get("/visit")
    closed: list[bool] = []
    original = store.close

    async def close() -> None:
        closed.append(True)
        await original()

    store.close = close  # type: ignore[method-assign]
    await site.stop()  # uvicorn's lifespan shutdown
    assert closed == [True]
