"""The demo shop (aiohttp and FastAPI) in a real headless Chromium, on a real server.

One visitor's whole life: a first look, login, reloads, a cart, logout; checked
in the page, in the browser's cookie jar and in the store.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest

from cyclicsess import SessionStore
from examples import app as aiohttp_demo
from examples import fastapi_app as fastapi_demo
from tests.browser.cdp import CHROMIUM, Browser
from tests.integration.conftest import StoreFactory
from tests.serving import serve

DEMOS = {"aiohttp": aiohttp_demo.make_app, "fastapi": fastapi_demo.make_app}

pytestmark = [pytest.mark.integration, pytest.mark.servers("dynalite")]

COOKIE = "demo_session"
NAME = "Ada Lovelace"
NOT_LOGGED_IN = "You are not logged in."

# Everything the page shows about the session, in one round trip.
STATE_JS = """(() => {
  const text = id => { const el = document.getElementById(id); return el && el.textContent; };
  const cart = document.getElementById("cart");
  return {
    greeting: text("greeting"), visits: text("visits"), hash: text("hash"),
    version: text("version"), expires: text("expires"), jsCookies: document.cookie,
    cart: cart && Array.from(cart.querySelectorAll("li"), li => li.textContent),
  };
})()"""


async def page_state(browser: Browser) -> dict[str, Any]:
    state: dict[str, Any] = await browser.evaluate(STATE_JS)
    return state


async def session_cookie(browser: Browser, base: str) -> dict[str, Any] | None:
    jar = [c for c in await browser.cookies() if c["name"] == COOKIE]
    sent = [c for c in await browser.cookies(base + "/") if c["name"] == COOKIE]
    assert len(jar) == len(sent) <= 1, jar
    return sent[0] if sent else None


@pytest.mark.parametrize("demo", sorted(DEMOS))
async def test_a_visitor_logs_in_shops_and_logs_out(
    make_store: StoreFactory, tmp_path: Any, demo: str
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is needed at {CHROMIUM} for the browser tests: "
            "`apt-get install chromium` (Debian), or make test CHROMIUM=/path/to/chrome"
        )
    store = await make_store(user_key="user")  # as the demo's own store
    base, stop = await serve(DEMOS[demo](store))
    try:
        browser = await Browser.launch()
        try:
            await visit(browser, store, base, tmp_path / demo)
        finally:
            await browser.close()
    finally:
        await stop()  # closes the store too


async def visit(browser: Browser, store: SessionStore, base: str, tmp_path: Any) -> None:
    # 1. A first look stores nothing and sets no cookie.
    await browser.navigate(base + "/")
    state = await page_state(browser)
    assert state["greeting"] == NOT_LOGGED_IN
    assert state["hash"] == "(nothing stored yet)"
    assert state["version"] == "-"
    assert await session_cookie(browser, base) is None

    # 2. Login: a persistent, HttpOnly, SameSite=Lax cookie the page never shows.
    await browser.type("input[name=name]", NAME)
    await browser.click("#login")
    state = await page_state(browser)
    assert state["greeting"] == f"Hello, {NAME}!"
    assert state["visits"] == "1"
    cookie = await session_cookie(browser, base)
    assert cookie is not None
    sid = cookie["value"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain HTTP on 127.0.0.1
    assert cookie["path"] == "/"
    assert cookie["session"] is False
    assert cookie["expires"] > time.time()
    assert abs(cookie["expires"] - (time.time() + store.ttl_s)) < 120
    assert COOKIE not in state["jsCookies"]  # HttpOnly: invisible to scripts
    html = await browser.html()
    assert sid not in html
    assert state["hash"] == store.storage_key(sid)
    assert store.storage_key(sid) in html
    record = await store.get(sid)
    assert record is not None
    assert record.data == {"user": NAME, "visits": 1}
    # The page shows the session as its request left it: saved before rendering.
    assert state["version"] == str(record.version)
    assert dt.datetime.fromisoformat(state["expires"]) == record.expires_at
    tmp_path.mkdir(exist_ok=True)
    screenshot = os.environ.get("CYCLICSESS_SCREENSHOT") or str(tmp_path / "logged-in.png")
    png = await browser.screenshot(screenshot)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000, "a blank page?"

    # 3. Reloads count visits, each a new version of the same session.
    version = int(state["version"])
    for visits in (2, 3):
        await browser.reload()
        state = await page_state(browser)
        assert state["visits"] == str(visits)
        assert int(state["version"]) == version + 1
        version = int(state["version"])
        record = await store.get(sid)
        assert record is not None and record.version == version
        assert dt.datetime.fromisoformat(state["expires"]) == record.expires_at
        assert (await session_cookie(browser, base) or {}).get("value") == sid

    # 4. Another device logs in as the same user: the page lists both; one click ends it.
    other = await store.create({"user": NAME})
    await browser.reload()
    assert await browser.evaluate('document.getElementById("session-count").textContent') == "2"
    await browser.click("#logout-others")
    assert await browser.evaluate('document.getElementById("session-count").textContent') == "1"
    assert await store.get(other) is None
    assert (await session_cookie(browser, base) or {}).get("value") == sid
    record = await store.get(sid)
    assert record is not None and record.data["user"] == NAME

    # 5. A cart: two items, then empty.
    for item in ("tea", "biscuits"):
        await browser.type("input[name=item]", item)
        await browser.click("#add")
    state = await page_state(browser)
    assert state["cart"] == ["tea", "biscuits"]
    record = await store.get(sid)
    assert record is not None
    assert record.data["cart"] == ["tea", "biscuits"]
    await browser.click("#empty")
    state = await page_state(browser)
    assert state["cart"] == ["(empty)"]
    record = await store.get(sid)
    assert record is not None
    assert "cart" not in record.data
    assert record.data["user"] == NAME

    # 6. Logout: the cookie leaves the jar and the session the store.
    await browser.click("#logout")
    state = await page_state(browser)
    assert state["greeting"] == NOT_LOGGED_IN
    assert state["hash"] == "(nothing stored yet)"
    assert await session_cookie(browser, base) is None
    assert await store.get(sid) is None
