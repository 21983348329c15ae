"""Serving a test's app on 127.0.0.1 with its framework's own server, and stopping it.

aiohttp apps run on aiohttp's server, ASGI apps on uvicorn (with its lifespan),
each on a socket the caller bound to a free loopback port.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from aiohttp import web

__all__ = ["Stop", "loopback_socket", "serve", "serve_aiohttp", "serve_asgi"]

Stop = Callable[[], Awaitable[None]]


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1.

    Made with the TCP protocol number, so that asyncio sets TCP_NODELAY on the
    connections it accepts (with proto 0 it does not, and a server writing a
    response in two parts waits out the client's delayed ACK: ~40 ms each).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve_aiohttp(app: web.Application, sock: socket.socket) -> Stop:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner.cleanup


async def serve_asgi(app: Any, sock: socket.socket) -> Stop:
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-Proto from loopback
    # clients itself; here the middleware's trust_forwarded is what is tested.
    config = uvicorn.Config(
        app, lifespan="on", log_level="critical", ws="websockets-sansio", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raise what stopped it

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


async def serve(app: Any) -> tuple[str, Stop]:
    """Serve ``app`` (aiohttp or ASGI) on a free loopback port; return its URL and stop."""
    sock = loopback_socket()
    run = serve_aiohttp if isinstance(app, web.Application) else serve_asgi
    stop = await run(app, sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop
