"""A store made once per process, used from a new event loop per invocation (Lambda, Mangum).

Serverless handlers create the store at import, so warm invocations reuse it,
and often run each invocation in an event loop of its own. The store must
notice the new loop, open its connection pool there, keep what it resolved
once, and leave nothing unclosed behind (no warning, no leaked session).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from http.cookies import SimpleCookie
from typing import Any

import pytest
from mangum import Mangum

from cyclicsess import SessionStore
from tests.integration.conftest import Server


@pytest.fixture
def nothing_left_unclosed(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if anything warns of an unclosed session, connector or transport.

    Checked after the test, once its objects are gone and collected: that is
    when aiohttp and asyncio speak of what was left open.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            yield
            gc.collect()
    unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    unclosed += [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()]
    assert unclosed == []


def module_level_store(server: Server) -> SessionStore:
    return SessionStore(f"t-{uuid.uuid4().hex[:12]}", endpoint_url=server.url)


@pytest.mark.usefixtures("nothing_left_unclosed")
def test_one_store_serves_invocation_after_invocation(server: Server) -> None:
    store = module_level_store(server)  # as at import, outside any event loop
    sids: list[str] = []

    async def invocation(number: int) -> dict[str, Any]:
        if number == 0:
            await store.ensure_table()
        sids.append(await store.create({"invocation": number}))
        record = await store.get(sids[0])
        assert record is not None
        return record.data

    for number in range(5):  # a new loop each time, ended by asyncio.run
        assert asyncio.run(invocation(number)) == {"invocation": 0}
    assert len(set(sids)) == 5


# asyncio cannot close the sockets of a loop closed by hand; they close, with its
# ResourceWarning, when collected. What the store owes is no unclosed aiohttp session.
@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
def test_a_loop_closed_by_hand_leaves_no_session_behind(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    store = module_level_store(server)

    async def invocation() -> bool:
        await store.ensure_table()
        return await store.get(await store.create({"n": 1})) is not None

    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(invocation())
    loop.close()  # without shutdown_asyncgens(): asyncio's own transports stay open
    assert asyncio.run(invocation())  # a new pool on the new loop; the old one is dropped
    gc.collect()
    assert not [r for r in caplog.records if "Unclosed client session" in r.getMessage()]


def test_concurrent_first_calls_on_a_new_loop_share_one_open(server: Server) -> None:
    store = module_level_store(server)

    async def invocation() -> int:
        await store.ensure_table()
        sids = await asyncio.gather(*(store.create({"n": n}) for n in range(20)))
        found = await asyncio.gather(*(store.get(sid) for sid in sids))
        await store.close()
        return sum(record is not None for record in found)

    assert asyncio.run(invocation()) == 20
    assert asyncio.run(invocation()) == 20


# -- Mangum: an ASGI app behind API Gateway events -------------------------------------


def visit_app(store: SessionStore) -> Callable[..., Awaitable[None]]:
    """A plain ASGI app counting visits in a session; the store closes at shutdown."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        cookies: SimpleCookie = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.load(value.decode())
        sid = cookies["sid"].value if "sid" in cookies else None
        record = await store.get(sid) if sid else None
        if record is None:
            sid = await store.create({"visits": 1})
            visits = 1
        else:
            visits = record.data["visits"] + 1
            await store.set(record.id, {"visits": visits}, version=record.version)
        body = json.dumps({"visits": visits}).encode()
        headers = [(b"content-type", b"application/json"), (b"set-cookie", f"sid={sid}".encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def api_gateway_v2_event(cookie: str | None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "GET /visit",
        "rawPath": "/visit",
        "rawQueryString": "",
        "cookies": [cookie] if cookie else [],
        "headers": {"host": "app.example", "user-agent": "test"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "app.example",
            "domainPrefix": "app",
            "http": {
                "method": "GET",
                "path": "/visit",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "requestId": "id",
            "routeKey": "GET /visit",
            "stage": "$default",
            "time": "02/Dec/2026:10:00:00 +0000",
            "timeEpoch": 1796205600000,
        },
        "isBase64Encoded": False,
    }


def api_gateway_v1_event(cookie: str | None) -> dict[str, Any]:
    return {
        "resource": "/visit",
        "path": "/visit",
        "httpMethod": "GET",
        "headers": {"Host": "app.example", **({"Cookie": cookie} if cookie else {})},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "resourcePath": "/visit",
            "httpMethod": "GET",
            "path": "/prod/visit",
            "stage": "prod",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


class LambdaContext:
    function_name = "visits"
    aws_request_id = "request"


def set_cookie_of(response: dict[str, Any]) -> str:
    cookies = response.get("cookies") or [response["headers"]["set-cookie"]]
    return str(cookies[0])


@pytest.mark.usefixtures("nothing_left_unclosed")
@pytest.mark.parametrize("lifespan", ["auto", "off"])
def test_mangum_invocations_each_on_a_new_loop(server: Server, lifespan: str) -> None:
    store = module_level_store(server)
    asyncio.run(store.ensure_table())
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler = Mangum(visit_app(store), lifespan=lifespan)  # type: ignore[arg-type]
    cookie: str | None = None
    for visit in range(1, 7):
        event = (api_gateway_v2_event if visit % 2 else api_gateway_v1_event)(cookie)
        response = handler(event, LambdaContext())
        # the runtime ends this loop as asyncio.run would and gives the next event a new one
        loop = asyncio.get_event_loop()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(asyncio.new_event_loop())
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"]) == {"visits": visit}
        cookie = set_cookie_of(response)
    asyncio.get_event_loop().close()
    asyncio.set_event_loop(None)
