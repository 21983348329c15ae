"""The fault proxy itself, against a tiny in-process upstream (no DynamoDB server)."""

from __future__ import annotations

import asyncio
import json
import socket
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.faultproxy import FAULT_KINDS, FaultProxy

TARGET = "DynamoDB_20120810."


class Upstream:
    """An upstream that echoes what it got and counts what reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, CIMultiDict[str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.headers.get("x-amz-target", ""), request.headers.copy(), body))
        payload = json.dumps({"echo": body.decode(), "ok": True}).encode()
        return web.Response(
            body=payload,
            headers={
                "content-type": "application/x-amz-json-1.0",
                "x-amz-crc32": str(zlib.crc32(payload)),
            },
        )


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    app = web.Application()
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    server.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield server
    await runner.cleanup()


async def post(
    url: str, operation: str, body: bytes = b"{}", timeout: float = 2.0
) -> tuple[int, CIMultiDict[str], bytes]:
    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": TARGET + operation,
        "authorization": "AWS4-HMAC-SHA256 Credential=local/...",
        "x-amz-date": "20240101T000000Z",
        "x-other": "not forwarded",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response,
    ):
        return response.status, response.headers.copy(), await response.read()


async def test_forwards_body_and_headers(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        assert proxy.url.startswith("http://127.0.0.1:")
        status, headers, body = await post(proxy.url, "GetItem", b'{"k":1}')
    assert status == 200
    assert json.loads(body) == {"echo": '{"k":1}', "ok": True}
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    (target, sent, got), *_ = upstream.seen
    assert target == TARGET + "GetItem"
    assert got == b'{"k":1}'
    assert sent["authorization"].startswith("AWS4-HMAC-SHA256")
    assert sent["x-amz-date"] == "20240101T000000Z"
    assert "x-other" not in sent
    assert proxy.requests == ["GetItem"]
    assert proxy.faults_injected == []


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("throttle", 400, "ProvisionedThroughputExceededException"),
        ("throttling", 400, "ThrottlingException"),
        ("500", 500, "InternalFailure"),
        ("503", 503, "ServiceUnavailable"),
    ],
)
async def test_error_answers_are_not_forwarded(
    upstream: Upstream, kind: str, status: int, code: str
) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_next(2, kind)  # type: ignore[arg-type]
        answers = [await post(proxy.url, "PutItem") for _ in range(3)]
    assert [answer[0] for answer in answers] == [status, status, 200]
    for _, headers, body in answers[:2]:
        assert json.loads(body)["__type"].endswith("#" + code)
        assert headers["content-type"] == "application/x-amz-json-1.0"
    assert len(upstream.seen) == 1
    assert proxy.count("PutItem") == 3
    assert proxy.faults() == 2


async def test_operation_filter_and_queue_order(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_next(1, "500", operation="UpdateItem")
        proxy.fail_next(1, "throttle", operation="UpdateItem")
        assert (await post(proxy.url, "GetItem"))[0] == 200
        assert (await post(proxy.url, "UpdateItem"))[0] == 500
        assert (await post(proxy.url, "GetItem"))[0] == 200
        assert (await post(proxy.url, "UpdateItem"))[0] == 400
        assert (await post(proxy.url, "UpdateItem"))[0] == 200
    assert proxy.requests == ["GetItem", "UpdateItem", "GetItem", "UpdateItem", "UpdateItem"]
    assert [(f.operation, f.kind) for f in proxy.faults_injected] == [
        ("UpdateItem", "500"),
        ("UpdateItem", "throttle"),
    ]


async def test_fail_forever_until_clear(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_forever("503")
        for _ in range(5):
            assert (await post(proxy.url, "GetItem"))[0] == 503
        proxy.clear()
        assert (await post(proxy.url, "GetItem"))[0] == 200
    assert proxy.faults() == 5
    assert len(upstream.seen) == 1


async def test_reset_answers_nothing_and_forwards_nothing(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_next(1, "reset")
        with pytest.raises(aiohttp.ClientError):
            await post(proxy.url, "GetItem")
        assert (await post(proxy.url, "GetItem"))[0] == 200
    assert len(upstream.seen) == 1


async def test_drop_answer_forwards_then_resets(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_next(1, "drop_answer")
        with pytest.raises(aiohttp.ClientError):
            await post(proxy.url, "PutItem", b'{"a":1}')
    assert [got for _, _, got in upstream.seen] == [b'{"a":1}']


async def test_badcrc_forwards_with_a_wrong_checksum(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url) as proxy:
        proxy.fail_next(1, "badcrc")
        status, headers, body = await post(proxy.url, "GetItem")
    assert status == 200
    assert json.loads(body)["ok"] is True
    assert headers["x-amz-crc32"] != str(zlib.crc32(body))
    assert len(upstream.seen) == 1


async def test_stall_abandoned_by_the_client_is_never_forwarded(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url, stall=1.0) as proxy:
        proxy.fail_next(1, "stall")
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await post(proxy.url, "GetItem", timeout=0.2)
        assert loop.time() - start < 0.9
        await asyncio.sleep(1.1)  # past the stall: a late forward would show now
        assert upstream.seen == []
        assert (await post(proxy.url, "GetItem"))[0] == 200
    assert len(upstream.seen) == 1


async def test_stall_then_answer_when_the_client_waits(upstream: Upstream) -> None:
    async with FaultProxy(upstream.url, stall=0.3) as proxy:
        proxy.fail_next(1, "stall")
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert (await post(proxy.url, "GetItem", timeout=2.0))[0] == 200
        assert loop.time() - start >= 0.3
    assert len(upstream.seen) == 1


async def test_exit_ends_a_stall_promptly(upstream: Upstream) -> None:
    loop = asyncio.get_running_loop()
    async with FaultProxy(upstream.url, stall=10.0) as proxy:
        proxy.fail_forever("stall")
        pending = asyncio.ensure_future(post(proxy.url, "GetItem", timeout=5.0))
        await asyncio.sleep(0.1)
        start = loop.time()
    assert loop.time() - start < 2.0
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)


async def test_upstream_failure_is_a_502_and_recorded() -> None:
    with socket.socket() as closed:  # bound, not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        async with FaultProxy(f"http://127.0.0.1:{closed.getsockname()[1]}") as proxy:
            status, _, body = await post(proxy.url, "GetItem")
    assert status == 502
    assert json.loads(body)["__type"] == "faultproxy#UpstreamError"
    assert len(proxy.upstream_errors) == 1
    assert isinstance(proxy.upstream_errors[0], aiohttp.ClientError)


def test_bad_plans_are_refused() -> None:
    proxy = FaultProxy("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="unknown fault kind"):
        proxy.fail_next(1, "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.fail_next(-1, "500")
    with pytest.raises(ValueError):
        FaultProxy("http://127.0.0.1:1", stall=60)
    assert {"throttle", "throttling", "500", "503", "reset", "stall", "badcrc"} < FAULT_KINDS
