"""Small test helpers shared by unit and integration tests."""

from __future__ import annotations

import socket
import time
from http.cookies import Morsel, SimpleCookie
from typing import Any


class FakeClock:
    """A clock the test moves by hand: ``clock.advance(seconds)``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def response_cookie(response: Any, name: str) -> Morsel[str] | None:
    """The cookie ``name`` a response sets (Set-Cookie), or None."""
    cookies: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookies.load(header)
    return cookies.get(name)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
