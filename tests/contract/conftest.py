"""The contract suite's harness: every adapter's app on a real server, one browser for all.

Each test runs once per adapter (``adapter``) and DynamoDB-compatible server
(``server``). The app is served on 127.0.0.1 by its framework's server (aiohttp's
own; uvicorn for the ASGI ones), the store reaches the database through a
:class:`~tests.faultproxy.FaultProxy` that counts (and, when asked, fails)
every operation, and the browser is an aiohttp client with a cookie jar.

``@pytest.mark.adapters("aiohttp", ...)`` limits a test to the adapters it
applies to: the aiohttp-session storage has no options of the middleware's
(signing, proxies, error policy), merges no conflicts and saves nothing for
streamed responses, as documented.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from cyclicsess import SessionStore
from tests.contract.apps import BUILDERS
from tests.faultproxy import FaultProxy
from tests.helpers import FakeClock
from tests.integration.conftest import (  # noqa: F401  (fixtures and hooks pytest finds here)
    Server,
    StoreFactory,
    pytest_configure,
    raw,
    stores_on,
)
from tests.integration.conftest import clock as clock
from tests.integration.conftest import pytest_generate_tests as _servers
from tests.serving import loopback_socket, serve_aiohttp, serve_asgi

ADAPTERS = list(BUILDERS)
#: Adapters with the middleware's options (signing, trust_forwarded, on_store_error...).
MIDDLEWARES = ["aiohttp", "starlette", "fastapi", "litestar"]
ASGI = ["starlette", "fastapi", "litestar"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    _servers(metafunc)
    if "adapter" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("adapters")
    adapters = list(marker.args) if marker is not None else ADAPTERS
    metafunc.parametrize("adapter", adapters)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class Response:
    """What the browser got: status, headers (all ``Set-Cookie`` lines) and body."""

    status: int
    headers: Any
    text: str
    set_cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.text)

    def cookie(self, name: str) -> dict[str, str] | None:
        """The attributes of the ``Set-Cookie`` for ``name`` (lower-case keys), or None."""
        for line in self.set_cookies:
            first, *attributes = (part.strip() for part in line.split(";"))
            key, _, value = first.partition("=")
            if key == name:
                parsed = {"value": value}
                for attribute in attributes:
                    k, _, v = attribute.partition("=")
                    parsed[k.lower()] = v or "true"
                return parsed
        return None


class Browser:
    """One visitor: a cookie jar and the app's base URL."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def request(
        self, method: str, path: str, *, follow: bool = True, **options: Any
    ) -> Response:
        async with self.http.request(
            method, self.base + path, allow_redirects=follow, **options
        ) as answer:
            return Response(
                answer.status,
                answer.headers,
                await answer.text(),
                list(answer.headers.getall("Set-Cookie", ())),
            )

    async def get(self, path: str, **options: Any) -> Response:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Response:
        return await self.request("POST", path, **options)

    async def websocket(self, path: str, **options: Any) -> tuple[int, str]:
        """Open a WebSocket; return the handshake status and the first message."""
        async with self.http.ws_connect(self.base.replace("http", "ws", 1) + path, **options) as ws:
            message = await ws.receive(timeout=5)
            return 101, str(message.data)

    def cookie(self, name: str) -> str | None:
        """The value the jar holds for ``name``."""
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        """Hold ``name=value`` for the site, as if the site had set it."""
        self.http.cookie_jar.clear()
        self.http.cookie_jar.update_cookies({name: value}, response_url=URL(self.base))

    async def close(self) -> None:
        await self.http.close()


@dataclass
class Site:
    """An adapter's app, served; open browsers with :meth:`browser`."""

    adapter: str
    url: str
    store: SessionStore
    cookie_name: str
    stop_server: Callable[[], Awaitable[None]]
    browsers: list[Browser] = field(default_factory=list)
    stopped: bool = False

    @property
    def merges(self) -> bool:
        """Whether conflicting saves are merged (else refused with 409)."""
        return self.adapter != "aiohttp-session"

    @property
    def saves_streams(self) -> bool:
        """Whether streamed responses and WebSocket handshakes save the session."""
        return self.adapter != "aiohttp-session"

    def browser(self) -> Browser:
        browser = Browser(self.url)
        self.browsers.append(browser)
        return browser

    async def stop(self) -> None:
        """Close the browsers and stop the server (an ASGI app's lifespan ends)."""
        if self.stopped:
            return
        self.stopped = True
        for browser in self.browsers:
            await browser.close()
        await self.stop_server()


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[FaultProxy]:
    """Between every contract store and the server: counts, and faults when asked."""
    async with FaultProxy(server.url, stall=1.0) as running:
        yield running


@pytest.fixture
async def make_store(proxy: FaultProxy, clock: FakeClock) -> AsyncIterator[StoreFactory]:
    """Stores on a fresh table, reaching the server through the proxy."""
    async with stores_on(proxy.url, clock) as factory:
        yield factory


@pytest.fixture
async def store(make_store: StoreFactory) -> SessionStore:
    return await make_store()


@pytest.fixture
async def make_site(adapter: str) -> AsyncIterator[SiteFactory]:
    sites: list[Site] = []

    async def factory(store: SessionStore, **options: Any) -> Site:
        app = BUILDERS[adapter](store, **options)
        sock = loopback_socket()
        serve = serve_aiohttp if adapter.startswith("aiohttp") else serve_asgi
        stop = await serve(app, sock)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        if adapter == "aiohttp-session":
            name = options.get("cookie_name", "AIOHTTP_SESSION")
        else:
            name = getattr(options.get("cookie"), "name", None) or "session"
        site = Site(adapter, url, store, name, stop)
        sites.append(site)
        return site

    yield factory
    for site in sites:
        await site.stop()


@pytest.fixture
async def site(make_site: SiteFactory, store: SessionStore) -> Site:
    return await make_site(store)
