"""Small pieces of the wire: the Host header, the request date, failures in words."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from yarl import URL

__all__ = ["AmzDate", "describe_failure", "host_header"]


def host_header(url: URL) -> str:
    """The ``Host`` header for ``url``: the port only when it is not the scheme's default."""
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        host = f"{host}:{url.port}"
    return host


class AmzDate:
    """``YYYYMMDDTHHMMSSZ`` for now, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_failure(cause: BaseException | None) -> str:
    """The last failure of a call, in one line a person can act on."""
    if isinstance(cause, asyncio.TimeoutError):
        return _one_line(str(cause)) or "no answer in time"
    if isinstance(cause, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the proxy {cause.host}:{cause.port} ({_os_reason(cause)})"
    if isinstance(cause, aiohttp.ClientConnectorError):
        return f"cannot connect to {cause.host}:{cause.port} ({_os_reason(cause)})"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(cause, OSError):
        return f"connection error ({_one_line(str(cause)) or type(cause).__name__})"
    if cause is None:
        return "unknown failure"
    text = _one_line(str(cause))
    return text if text else type(cause).__name__


def _os_reason(error: aiohttp.ClientConnectorError) -> str:
    os_error = error.os_error
    return _one_line(os_error.strerror or str(os_error) or type(os_error).__name__)
