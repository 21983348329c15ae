"""One aiohttp connection pool per event loop, closed when that loop shuts down.

A store is made once per process (at import, so that warm serverless
invocations reuse it), yet serverless handlers often run every invocation in
an event loop of its own (``asyncio.run`` per event), and aiohttp's
connections belong to the loop that opened them. So each running loop gets a
pool of its own on first use. The pool is closed when its loop is shut down
by ``asyncio.run`` (or any runner that calls ``loop.shutdown_asyncgens()``,
which closes the small async generator registered here for that purpose), by
:meth:`LoopPools.close`, or, for a loop closed without that shutdown, on the
first use from another loop: no "Unclosed client session" warning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import NamedTuple

import aiohttp

__all__ = ["LoopPools", "Pool"]


class Pool(NamedTuple):
    """The connection pool of one event loop.

    Attributes:
        http: the aiohttp session holding the connections.
        slots: one per connection; a call holds one from before its request
            until its answer is read, so waiting for a free connection is
            timed apart from the request itself.
        closer: the generator that closes the pool when the loop shuts down.
    """

    http: aiohttp.ClientSession
    slots: asyncio.Semaphore
    closer: AsyncGenerator[None, None]


class LoopPools:
    """The pool of the running event loop, opened on first use.

    Args:
        open_http: makes a new aiohttp session (called inside the loop).
        size: connections per pool.
    """

    def __init__(self, open_http: Callable[[], aiohttp.ClientSession], size: int) -> None:
        self._open_http = open_http
        self._size = size
        self._pools: dict[asyncio.AbstractEventLoop, Pool] = {}

    def current(self) -> Pool | None:
        """The running loop's open pool, if it has one (no I/O: the hot path)."""
        return self._pools.get(asyncio.get_running_loop())

    async def open(self) -> Pool:
        """The running loop's pool, opened now if it has none."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        await self._forget_ended_loops()
        http = self._open_http()
        closer = self._closed_at_shutdown(loop, http)
        # The first step registers the generator with the running loop, whose
        # shutdown_asyncgens() will close it, and the pool with it.
        await closer.__anext__()
        pool = self._pools[loop] = Pool(http, asyncio.Semaphore(self._size), closer)
        return pool

    async def _closed_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, http: aiohttp.ClientSession
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            pool = self._pools.get(loop)
            if pool is not None and pool.http is http:
                del self._pools[loop]
            await http.close()

    async def close(self) -> None:
        """Close the running loop's pool, and those of loops that have ended."""
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is not None:
            await pool.closer.aclose()
        await self._forget_ended_loops()

    async def _forget_ended_loops(self) -> None:
        # A loop closed without shutdown_asyncgens() left its pool behind. Its
        # connections cannot be closed through a closed loop (aiohttp only marks
        # them closed; the sockets close when collected), but closing the pool
        # drops every reference to them and quiets aiohttp's warnings.
        for loop, pool in list(self._pools.items()):
            if loop.is_closed():
                await pool.closer.aclose()
