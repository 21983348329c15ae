"""Small servers on loopback that play what local DynamoDB servers never show.

- :class:`CredentialsEndpoint`: a container credentials endpoint (what ECS,
  EKS Pod Identity and Lambda serve at ``AWS_CONTAINER_CREDENTIALS_FULL_URI``)
  that can be slow, fail, or hand out short-lived keys.
- :class:`StubDynamo`: answers DynamoDB requests after a delay, from a queue of
  canned answers, counting what it received.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["CannedAnswer", "CredentialsEndpoint", "StubDynamo", "serve"]

CannedAnswer = tuple[int, Mapping[str, str], bytes]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Start ``app`` on 127.0.0.1 (a free port); return its runner and URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


class _Served:
    """An aiohttp app of a test, served on loopback while entered."""

    url = ""
    _runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        self._runner, self.url = await serve(self._app())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class CredentialsEndpoint(_Served):
    """Temporary credentials at ``url + "/creds"``; fetch ``n`` gets key ``AKID<n>``.

    Attributes:
        lifetime: how long the keys of the next answer are valid (a function of
            the answer's number, from 1).
        delay_s: how long an answer takes.
        status: the answer's status (500 to fail).
        fetches: how many requests arrived.
    """

    def __init__(self, lifetime: Callable[[int], dt.timedelta]) -> None:
        self.lifetime = lifetime
        self.delay_s = 0.0
        self.status = 200
        self.fetches = 0

    @staticmethod
    def secret(access_key: str) -> str:
        """The secret key handed out with ``access_key``."""
        return f"secret-of-{access_key}"

    def secrets(self, count: int = 50) -> dict[str, str]:
        """The secret keys of the first ``count`` answers, by access key id."""
        return {f"AKID{n}": self.secret(f"AKID{n}") for n in range(1, count + 1)}

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/creds", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.Response:
        self.fetches += 1
        number = self.fetches
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="credentials endpoint failure")
        expiration = dt.datetime.now(dt.timezone.utc) + self.lifetime(number)
        access_key = f"AKID{number}"
        return web.json_response(
            {
                "AccessKeyId": access_key,
                "SecretAccessKey": self.secret(access_key),
                "Token": f"token-{number}",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )


def _json_answer(status: int, body: dict[str, Any]) -> CannedAnswer:
    payload = json.dumps(body).encode()
    return status, {"content-type": "application/x-amz-json-1.0"}, payload


class StubDynamo(_Served):
    """Answers every POST after ``delay_s``: the next canned answer, else ``default``.

    Attributes:
        answers: canned answers still to give, in order.
        default: the answer when none is queued (``200 {}``).
        received: the ``x-amz-target`` operation of every request.
        in_flight_max: the most requests it held at once.
    """

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.answers: deque[CannedAnswer] = deque()
        self.default: CannedAnswer = _json_answer(200, {})
        self.received: list[str] = []
        self.in_flight_max = 0
        self._in_flight = 0

    def answer(
        self, status: int, body: dict[str, Any] | bytes, *, forever: bool = False, **headers: str
    ) -> None:
        """Queue one canned answer (a dict is sent as DynamoDB's JSON), or give it from now on."""
        if isinstance(body, dict):
            status, json_headers, payload = _json_answer(status, body)
            canned: CannedAnswer = (status, {**json_headers, **headers}, payload)
        else:
            canned = (status, headers, body)
        if forever:
            self.answers.clear()
            self.default = canned
        else:
            self.answers.append(canned)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append(request.headers.get("x-amz-target", "").rpartition(".")[2])
        self._in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self._in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self._in_flight -= 1
        status, headers, payload = self.answers.popleft() if self.answers else self.default
        headers = {"x-amz-crc32": str(zlib.crc32(payload)), **headers}
        return web.Response(status=status, body=payload, headers=headers)
