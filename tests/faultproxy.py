"""A fault-injecting HTTP proxy for tests, in front of a DynamoDB-compatible server.

::

    async with FaultProxy(server.url) as proxy:
        proxy.fail_next(3, "throttle", operation="GetItem")
        store = SessionStore(..., endpoint_url=proxy.url)
        ...
        assert proxy.count("GetItem") == 4

It listens on 127.0.0.1 (a free port) inside the running event loop and
forwards each request's body and DynamoDB headers upstream, relaying the
status, the body and ``x-amz-crc32``. The signature the client computed for
the proxy's host is forwarded unchanged: dynalite and moto do not check it.
It can also stand in for what sits in front of real DynamoDB: TLS with a
certificate of its own CA (``ssl_context``), a gateway serving DynamoDB under
a path (``path``), and SigV4 checking as AWS does it (``check_signatures``:
a wrong signature is answered with AWS's ``InvalidSignatureException``).

A fault plan is a queue of rules; each request takes the first rule whose
operation filter matches it, and passes through when none does:

========== ==============================================================
kind       what the client gets
========== ==============================================================
throttle   400 ``ProvisionedThroughputExceededException`` (not forwarded)
throttling 400 ``ThrottlingException`` (not forwarded)
500        500 ``InternalFailure`` (not forwarded)
503        503 ``ServiceUnavailable`` (not forwarded)
reset      the connection is reset, no answer (not forwarded)
stall      nothing for ``stall`` seconds, then the request is forwarded and
           answered; if the client gave up meanwhile it is never forwarded
badcrc     forwarded, answered with a wrong ``x-amz-crc32``
condition  400 ``ConditionalCheckFailedException`` (not forwarded): as if another
           writer had just saved
drop_answer forwarded and applied upstream, then the connection is reset
           instead of relaying the answer (a lost answer)
========== ==============================================================
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NamedTuple, get_args

import aiohttp
from aiohttp import web

from tests.sigcheck import signature_problem

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultProxy"]

FaultKind = Literal[
    "throttle", "throttling", "500", "503", "reset", "stall", "badcrc", "drop_answer", "condition"
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

#: The longest a stall may last, whatever the test asks: nothing hangs for long.
MAX_STALL_S = 10.0

_JSON = "application/x-amz-json-1.0"
_FORWARDED = (
    "content-type",
    "x-amz-target",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "accept-encoding",
)
_RELAYED = ("content-type", "content-encoding", "x-amz-crc32", "x-amzn-requestid")
_ERROR_ANSWERS: dict[str, tuple[int, dict[str, str]]] = {
    "throttle": (
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was "
            "exceeded (injected by FaultProxy)",
        },
    ),
    "throttling": (
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "Rate of requests exceeds the allowed throughput (injected by FaultProxy)",
        },
    ),
    "500": (500, {"__type": "com.amazon.coral.service#InternalFailure"}),
    "condition": (
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message": "The conditional request failed (injected by FaultProxy)",
        },
    ),
    "503": (
        503,
        {
            "__type": "com.amazon.coral.service#ServiceUnavailable",
            "message": "Service unavailable (injected by FaultProxy)",
        },
    ),
}


class Fault(NamedTuple):
    """One injected fault: the operation it hit and its kind."""

    operation: str
    kind: str


@dataclass
class _Rule:
    kind: str
    remaining: int | None  # None: forever
    operation: str | None  # None: any operation


def _operation(request: web.BaseRequest) -> str:
    target = request.headers.get("x-amz-target")
    if target:
        return target.rpartition(".")[2]
    return f"{request.method} {request.path}"


def _reset(request: web.BaseRequest) -> None:
    """Drop the client's connection with a TCP reset, answering nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # linger 0: close() sends RST instead of FIN, as a crashed peer would
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class FaultProxy:
    """A proxy to ``upstream_url`` that injects the faults a test plans.

    Args:
        upstream_url: the real server, e.g. ``http://127.0.0.1:8000``.
        stall: seconds a ``stall`` fault holds a request (at most 10); make it
            longer than the client's attempt timeout.
        upstream_timeout: the most time one forwarded request may take.
        ssl_context: serve HTTPS with this context (its certificate) instead of HTTP.
        path: serve under this path (``/dynamodb``); forwarded without it.
        check_signatures: secret keys by access key id; if given, every
            request's SigV4 signature is checked as AWS checks it.

    Attributes:
        url: the proxy's own URL, once entered.
        access_keys: the access key id of every request, in order.
        requests: the operation of every request seen, faulted or not, in order.
        faults_injected: every fault injected, in order.
        upstream_errors: failures talking to the upstream (answered as 502s).
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        stall: float = 2.0,
        upstream_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        path: str = "",
        check_signatures: dict[str, str] | None = None,
    ) -> None:
        if not 0 < stall <= MAX_STALL_S:
            raise ValueError(f"stall must be in (0, {MAX_STALL_S}] seconds, not {stall}")
        self.upstream_url = upstream_url.rstrip("/")
        self.stall = stall
        self.upstream_timeout = upstream_timeout
        self.ssl_context = ssl_context
        self.path = path.rstrip("/")
        self.check_signatures = check_signatures
        self.access_keys: list[str] = []
        self.url = ""
        self.requests: list[str] = []
        self.faults_injected: list[Fault] = []
        self.upstream_errors: list[BaseException] = []
        self._rules: list[_Rule] = []
        self._runner: web.AppRunner | None = None
        self._upstream: aiohttp.ClientSession | None = None
        self._closing: asyncio.Event | None = None

    # -- the fault plan ----------------------------------------------------------

    def fail_next(self, n: int, kind: FaultKind, *, operation: str | None = None) -> None:
        """Inject ``kind`` into the next ``n`` requests (of ``operation``, if given).

        Rules queue up: ``fail_next(1, "500"); fail_next(1, "reset")`` answers
        the first request with a 500 and resets the second.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        if n:
            self._rules.append(_Rule(self._check(kind), n, operation))

    def fail_forever(self, kind: FaultKind, *, operation: str | None = None) -> None:
        """Inject ``kind`` into every request (of ``operation``) until :meth:`clear`."""
        self._rules.append(_Rule(self._check(kind), None, operation))

    def clear(self) -> None:
        """Forget the fault plan: every request passes through again."""
        self._rules.clear()

    def reset_counts(self) -> None:
        """Forget the requests and faults seen so far."""
        self.requests.clear()
        self.faults_injected.clear()

    def count(self, operation: str) -> int:
        """How many requests for ``operation`` the proxy saw (faulted or not)."""
        return self.requests.count(operation)

    def faults(self, operation: str | None = None) -> int:
        """How many faults were injected (into ``operation``, if given)."""
        return sum(1 for f in self.faults_injected if operation in (None, f.operation))

    @staticmethod
    def _check(kind: str) -> str:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        return kind

    def _take(self, operation: str) -> str | None:
        for index, rule in enumerate(self._rules):
            if rule.operation not in (None, operation):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._rules[index]
            return rule.kind
        return None

    # -- life cycle --------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        self._closing = asyncio.Event()
        self._upstream = aiohttp.ClientSession(
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout),
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a handler stops when its client hangs up, so a
        # stalled request the client gave up on is never forwarded late
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            await self._runner.setup()
            await web.SockSite(self._runner, sock, ssl_context=self.ssl_context).start()
        except BaseException:
            sock.close()
            await self._stop()
            raise
        host, port = sock.getsockname()[:2]
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{port}{self.path}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        self.clear()
        if self._closing is not None:
            self._closing.set()  # ends stalls at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None

    # -- the handler -------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        operation = _operation(request)
        self.requests.append(operation)
        authorization = request.headers.get("authorization", "")
        self.access_keys.append(authorization.partition("Credential=")[2].partition("/")[0])
        if not request.path.startswith(self.path + "/") and request.path != self.path:
            return _error(404, "faultproxy#NotFound", f"nothing is served at {request.path}")
        if self.check_signatures is not None:
            problem = signature_problem(request, body, self.check_signatures)
            if problem is not None:
                return _error(400, "com.amazon.coral.service#InvalidSignatureException", problem)
        kind = self._take(operation)
        if kind is None:
            return await self._forward(request, body)
        self.faults_injected.append(Fault(operation, kind))
        if kind in _ERROR_ANSWERS:
            status, answer = _ERROR_ANSWERS[kind]
            payload = json.dumps(answer).encode()
            return web.Response(
                status=status,
                body=payload,
                headers={"content-type": _JSON, "x-amz-crc32": str(zlib.crc32(payload))},
            )
        if kind == "reset":
            _reset(request)
            return web.Response(status=204)  # never written: the connection is gone
        if kind == "stall":
            assert self._closing is not None
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait([closing], timeout=self.stall)
            finally:
                closing.cancel()
            if not self._closing.is_set():
                return await self._forward(request, body)
            _reset(request)  # the proxy is stopping: answer nothing
            return web.Response(status=204)
        response = await self._forward(request, body)
        if kind == "badcrc":
            good = response.headers.get("x-amz-crc32")
            relayed = response.body
            assert isinstance(relayed, bytes)  # _forward answers with the bytes it read
            wrong = (int(good) if good and good.isdigit() else zlib.crc32(relayed)) + 1
            response.headers["x-amz-crc32"] = str(wrong % 2**32)
            return response
        # drop_answer: the upstream did the work; the client never hears of it
        _reset(request)
        return web.Response(status=204)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._upstream is not None
        headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
        url = self.upstream_url + (request.rel_url.raw_path_qs[len(self.path) :] or "/")
        try:
            async with self._upstream.request(
                request.method, url, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                relayed = {k: answer.headers[k] for k in _RELAYED if k in answer.headers}
                return web.Response(status=answer.status, body=payload, headers=relayed)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # not a planned fault: say so plainly (a 502 the client retries, whose
            # message ends up in StoreUnavailable) and keep it for the test to see
            self.upstream_errors.append(exc)
            return _error(502, "faultproxy#UpstreamError", f"upstream failed: {exc!r}")


def _error(status: int, type_: str, message: str) -> web.Response:
    payload = json.dumps({"__type": type_, "message": message}).encode()
    return web.Response(status=status, body=payload, headers={"content-type": _JSON})
