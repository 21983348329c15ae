"""What only some adapters have: the aiohttp-session storage's own options and ways, ASGI paths."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from cyclicsess import ConfigurationError, DynamoClient, SessionStore
from cyclicsess.asgi import regenerate_session
from cyclicsess.contrib.aiohttp_session import DynamoDBStorage
from tests.contract.apps import BUILDERS
from tests.contract.conftest import Site, SiteFactory
from tests.helpers import FakeClock

pytestmark = pytest.mark.adapters("aiohttp-session")


async def test_the_storage_honours_its_cookie_options(
    make_site: SiteFactory, store: SessionStore
) -> None:
    site = await make_site(
        store, cookie_name="sid", max_age=600, secure=True, samesite="Strict", path="/"
    )
    cookie = (await site.browser().get("/visit")).cookie("sid")
    assert cookie is not None
    assert cookie["max-age"] == "600" and "expires" in cookie
    assert cookie["secure"] == "true" and cookie["samesite"] == "Strict"


def test_the_storage_checks_its_store() -> None:
    with pytest.raises(TypeError, match="SessionStore"):
        DynamoDBStorage("sessions")  # type: ignore[arg-type]


async def test_an_empty_new_session_deletes_the_old_one_and_expires_the_cookie(
    site: Site, store: SessionStore
) -> None:
    browser = site.browser()
    await browser.get("/visit")
    before = browser.cookie(site.cookie_name) or ""
    cookie = (await browser.get("/fresh")).cookie(site.cookie_name)
    assert cookie is not None and cookie["value"] == "" and cookie["max-age"] == "0"
    assert await store.get(before) is None


async def test_created_is_the_items_creation_time(make_store: Any, make_site: SiteFactory) -> None:
    clock = FakeClock(start=1_700_000_000.5)  # far from time.time(), which Session uses
    site = await make_site(await make_store(clock=clock))
    browser = site.browser()
    await browser.get("/visit")
    clock.advance(100)
    await browser.get("/visit")  # a write does not move it
    assert (await browser.get("/created")).json() == 1_700_000_000


async def test_an_active_session_outlives_max_age_counted_from_creation(
    make_store: Any, make_site: SiteFactory
) -> None:
    # aiohttp-session's Session drops data older than max_age since `created`;
    # here the store's ttl since the last write decides alone.
    clock = FakeClock(start=time.time() - 3 * 3600)  # created three hours ago
    site = await make_site(await make_store(ttl=dt.timedelta(hours=1), clock=clock))
    browser = site.browser()
    for expected in range(1, 8):
        assert (await browser.get("/visit")).text == f"visits {expected}"
        clock.advance(25 * 60)


async def test_the_stored_data_is_only_the_users_dict(
    site: Site, store: SessionStore, raw: DynamoClient
) -> None:
    browser = site.browser()
    await browser.get("/visit")
    await browser.get("/visit")
    sid = browser.cookie(site.cookie_name) or ""
    answer = await raw.call(
        "GetItem",
        {"TableName": store.layout.table, "Key": store.layout.key(store.storage_key(sid))},
    )
    data = store.codec.decode(base64.b64decode(answer["Item"]["data"]["B"]))
    assert data == {"visits": 2}  # no aiohttp-session "created", no "session" wrapper


async def test_invalidate_then_new_data_moves_to_a_new_id(site: Site, store: SessionStore) -> None:
    browser = site.browser()
    await browser.post("/login?name=ada")
    old = browser.cookie(site.cookie_name) or ""
    cookie = (await browser.get("/logout-flash")).cookie(site.cookie_name)
    assert cookie is not None and cookie["value"] not in ("", old)
    assert await store.get(old) is None
    record = await store.get(cookie["value"])
    assert record is not None and record.data == {"flash": "logged out"}


def test_cyclicsess_imports_without_the_frameworks() -> None:
    code = (
        "import sys, cyclicsess, cyclicsess.aiohttp, cyclicsess.asgi; "
        "print(sorted(m for m in ('aiohttp_session', 'starlette', 'fastapi', 'litestar') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.adapters("starlette", "fastapi")
async def test_the_cookie_path_follows_the_root_path(adapter: str, store: SessionStore) -> None:
    app = BUILDERS[adapter](store)
    transport = httpx.ASGITransport(app=app, root_path="/shop")
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as client:
        response = await client.get("/shop/visit")
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "Path=/shop;" in cookie and cookie.startswith("session=")


async def test_regenerate_session_outside_the_middleware_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="SessionMiddleware"):
        await regenerate_session({"type": "http"})
