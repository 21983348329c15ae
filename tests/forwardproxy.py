"""A forward HTTP proxy on loopback, as corporate networks put in front of AWS.

::

    async with ForwardProxy() as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
        ...
        assert proxy.requests == ["POST http://127.0.0.1:8000/"]

Plain HTTP requests arrive in absolute form (``POST http://host:port/ ...``)
and are forwarded to their origin; ``CONNECT host:port`` opens a tunnel (for
HTTPS endpoints). Only loopback targets are served: anything else is refused
with 403. Each client connection carries one request (the proxy answers with
``Connection: close``), which keeps the forwarding simple and exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

__all__ = ["ForwardProxy"]

_LOOPBACK = ("127.0.0.1", "localhost")
_HEAD_LIMIT = 64 * 1024


class ForwardProxy:
    """A forward proxy on 127.0.0.1 (a free port).

    Args:
        require_auth: a ``Proxy-Authorization`` value every request must carry
            (else 407), or None.

    Attributes:
        url: ``http://127.0.0.1:PORT``, once entered.
        requests: the request line of every request seen (``CONNECT h:p`` for tunnels).
        authorizations: the ``Proxy-Authorization`` of every request ("" if none).
    """

    def __init__(self, *, require_auth: str | None = None) -> None:
        self.require_auth = require_auth
        self.url = ""
        self.requests: list[str] = []
        self.authorizations: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):  # ends every pipe: the tasks finish
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._one_request(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        authorization = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-auth")),
            "",
        )
        self.requests.append(f"{method} {target}")
        self.authorizations.append(authorization)
        if self.require_auth is not None and authorization != self.require_auth:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            path_line = b""
        else:
            scheme, _, rest = target.partition("://")
            hostport, slash, path = rest.partition("/")
            host, _, port = hostport.rpartition(":")
            port = port or ("443" if scheme == "https" else "80")
            kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection"))]
            origin_form = f"/{path}" if slash else "/"  # an empty path is "/" (RFC 9112)
            path_line = (f"{method} {origin_form} {version}\r\n" + "\r\n".join(kept)).encode(
                "latin-1"
            ) + b"\r\nConnection: close\r\n\r\n"
        if host not in _LOOPBACK:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self._writers.add(up_writer)
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(path_line)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until ``source`` ends, then end ``sink``'s writing side."""
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except OSError:
        pass
    finally:
        if not sink.is_closing() and sink.can_write_eof():
            with contextlib.suppress(OSError):
                sink.write_eof()
