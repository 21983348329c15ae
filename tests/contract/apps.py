"""The same small app on every adapter: the routes the contract suite drives.

Each ``build_*`` function makes the app on one framework from a
:class:`~cyclicsess.SessionStore` and the adapter's options. The routes:

========================= ==============================================================
``GET /visit``            counts visits in the session
``GET /peek``             the session's data as JSON (reads only)
``GET /nothing``          never asks for the session
``GET /browse``           reads a key of the session, stores nothing
``POST /login``           regenerates (dropping ``csrf``), then sets ``user``; 303 to /peek
``POST /logout``          logs out the framework's way (``invalidate()``; ``clear()`` on ASGI)
``POST /clear``           empties the session with ``clear()``
``GET /cart?item=``       appends to a list in place
``GET /set?key=&value=``  sets a key, then waits 50 ms (requests overlap)
``GET /slow-visit``       reads the count, waits 50 ms, writes count + 1
``GET /stream``           sets ``streamed``, then streams two chunks
``WS /ws``                sets ``ws`` before the handshake, sends ``hello``
``GET /boom``             sets ``charged``, then raises
``GET /slow-sudo``        reads, waits 200 ms, regenerates, sets ``sudo``
``GET /slow-set``         reads, waits 200 ms, sets ``late``
``GET /cached``           reads the session and sets its own ``Cache-Control``
========================= ==============================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp_session
import litestar
from aiohttp import web
from fastapi import FastAPI
from litestar import Litestar, get, post, websocket
from litestar.connection import WebSocket as LitestarWebSocket
from litestar.middleware import DefineMiddleware
from litestar.response import Redirect, Stream
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from cyclicsess import SessionStore
from cyclicsess.aiohttp import get_session, new_session, setup
from cyclicsess.asgi import SessionMiddleware, regenerate_session
from cyclicsess.contrib.aiohttp_session import DynamoDBStorage

__all__ = ["BUILDERS"]

CACHE_CONTROL = "public, max-age=60"


class Boom(Exception):
    """The handler failed."""


# -- aiohttp, native and through aiohttp-session -----------------------------------------


def _aiohttp_routes(get: Any, regenerate: Any, logout: Any) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/visit")
    async def visit(request: web.Request) -> web.Response:
        session = await get(request)
        session["visits"] = session.get("visits", 0) + 1
        return web.Response(text=f"visits {session['visits']}")

    @routes.get("/peek")
    async def peek(request: web.Request) -> web.Response:
        session = await get(request)
        return web.json_response({"data": dict(session), "new": session.new})

    @routes.get("/nothing")
    async def nothing(request: web.Request) -> web.Response:
        return web.Response(text="no session asked for")

    @routes.get("/browse")
    async def browse(request: web.Request) -> web.Response:
        session = await get(request)
        return web.Response(text=f"looked: {session.get('user')}")

    @routes.post("/login")
    async def login(request: web.Request) -> web.Response:
        session = await regenerate(request)
        session["user"] = request.query.get("name", "ada")
        raise web.HTTPSeeOther("/peek")

    @routes.post("/logout")
    async def logout_route(request: web.Request) -> web.Response:
        await logout(request)
        return web.Response(text="bye")

    @routes.post("/clear")
    async def clear(request: web.Request) -> web.Response:
        (await get(request)).clear()
        return web.Response(text="cleared")

    @routes.get("/cart")
    async def cart(request: web.Request) -> web.Response:
        session = await get(request)
        session.setdefault("cart", []).append(request.query["item"])
        return web.Response(text="added")

    @routes.get("/set")
    async def set_key(request: web.Request) -> web.Response:
        session = await get(request)
        session[request.query["key"]] = request.query["value"]
        await asyncio.sleep(0.05)
        return web.Response(text="set")

    @routes.get("/slow-visit")
    async def slow_visit(request: web.Request) -> web.Response:
        session = await get(request)
        visits = session.get("visits", 0)
        await asyncio.sleep(0.05)
        session["visits"] = visits + 1
        return web.Response(text=f"visits {visits + 1}")

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        session = await get(request)
        session["streamed"] = True
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"chunk one,")
        await response.write(b"chunk two")
        await response.write_eof()
        return response

    @routes.get("/ws")
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        session = await get(request)
        session["ws"] = "connected"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        await ws.close()
        return ws

    @routes.get("/boom")
    async def boom(request: web.Request) -> web.Response:
        session = await get(request)
        session["charged"] = True
        raise Boom("the handler failed")

    @routes.get("/slow-sudo")
    async def slow_sudo(request: web.Request) -> web.Response:
        await get(request)
        await asyncio.sleep(0.2)  # a logout in another tab lands meanwhile
        session = await regenerate(request)
        session["sudo"] = True
        return web.Response(text="sudo")

    @routes.get("/slow-set")
    async def slow_set(request: web.Request) -> web.Response:
        session = await get(request)
        await asyncio.sleep(0.2)
        session["late"] = True
        return web.Response(text="late")

    @routes.get("/cached")
    async def cached(request: web.Request) -> web.Response:
        session = await get(request)
        return web.Response(
            text=f"user {session.get('user')}", headers={"Cache-Control": CACHE_CONTROL}
        )

    return routes


def build_aiohttp(store: SessionStore, **options: Any) -> web.Application:
    async def regenerate(request: web.Request) -> Any:
        return await new_session(request, drop=["csrf"])

    async def logout(request: web.Request) -> None:
        (await get_session(request)).invalidate()

    app = web.Application()
    setup(app, store, **options)
    app.add_routes(_aiohttp_routes(get_session, regenerate, logout))
    return app


def build_aiohttp_session(store: SessionStore, **options: Any) -> web.Application:
    async def regenerate(request: web.Request) -> Any:
        # aiohttp-session's way: a new session, the old data copied over by hand
        old = dict(await aiohttp_session.get_session(request))
        old.pop("csrf", None)
        session = await aiohttp_session.new_session(request)
        session.update(old)
        return session

    async def logout(request: web.Request) -> None:
        (await aiohttp_session.get_session(request)).invalidate()

    extra = web.RouteTableDef()

    @extra.get("/created")
    async def created(request: web.Request) -> web.Response:
        return web.json_response((await aiohttp_session.get_session(request)).created)

    @extra.get("/fresh")
    async def fresh(request: web.Request) -> web.Response:
        await aiohttp_session.new_session(request)  # an empty new session replaces the old
        return web.Response(text="fresh")

    @extra.get("/logout-flash")
    async def logout_flash(request: web.Request) -> web.Response:
        session = await aiohttp_session.get_session(request)
        session.invalidate()
        session["flash"] = "logged out"
        return web.Response(text="bye")

    app = web.Application()
    aiohttp_session.setup(app, DynamoDBStorage(store, **options))
    app.add_routes(_aiohttp_routes(aiohttp_session.get_session, regenerate, logout))
    app.add_routes(extra)

    async def close_store(_: web.Application) -> None:
        await store.close()

    app.on_cleanup.append(close_store)
    return app


# -- Starlette and FastAPI ----------------------------------------------------------------


def build_starlette(store: SessionStore, **options: Any) -> Any:
    async def visit(request: Request) -> PlainTextResponse:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return PlainTextResponse(f"visits {request.session['visits']}")

    async def peek(request: Request) -> JSONResponse:
        return JSONResponse({"data": dict(request.session), "new": request.session.new})

    async def nothing(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no session asked for")

    async def browse(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"looked: {request.session.get('user')}")

    async def login(request: Request) -> RedirectResponse:
        session = await regenerate_session(request, drop=["csrf"])
        session["user"] = request.query_params.get("name", "ada")
        return RedirectResponse("/peek", status_code=303)

    async def clear(request: Request) -> PlainTextResponse:
        request.session.clear()
        return PlainTextResponse("bye")

    async def cart(request: Request) -> PlainTextResponse:
        request.session.setdefault("cart", []).append(request.query_params["item"])
        return PlainTextResponse("added")

    async def set_key(request: Request) -> PlainTextResponse:
        request.session[request.query_params["key"]] = request.query_params["value"]
        await asyncio.sleep(0.05)
        return PlainTextResponse("set")

    async def slow_visit(request: Request) -> PlainTextResponse:
        visits = request.session.get("visits", 0)
        await asyncio.sleep(0.05)
        request.session["visits"] = visits + 1
        return PlainTextResponse(f"visits {visits + 1}")

    async def stream(request: Request) -> StreamingResponse:
        request.session["streamed"] = True

        async def chunks() -> AsyncIterator[bytes]:
            yield b"chunk one,"
            yield b"chunk two"

        return StreamingResponse(chunks())

    async def websocket(ws: WebSocket) -> None:
        ws.session["ws"] = "connected"
        await ws.accept()
        await ws.send_text("hello")
        await ws.close()

    async def boom(request: Request) -> PlainTextResponse:
        request.session["charged"] = True
        raise Boom("the handler failed")

    async def slow_sudo(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.2)
        session = await regenerate_session(request)
        session["sudo"] = True
        return PlainTextResponse("sudo")

    async def slow_set(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.2)
        request.session["late"] = True
        return PlainTextResponse("late")

    async def cached(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            f"user {request.session.get('user')}", headers={"Cache-Control": CACHE_CONTROL}
        )

    routes = [
        Route("/visit", visit),
        Route("/peek", peek),
        Route("/nothing", nothing),
        Route("/browse", browse),
        Route("/login", login, methods=["POST"]),
        Route("/logout", clear, methods=["POST"]),
        Route("/clear", clear, methods=["POST"]),
        Route("/cart", cart),
        Route("/set", set_key),
        Route("/slow-visit", slow_visit),
        Route("/stream", stream),
        WebSocketRoute("/ws", websocket),
        Route("/boom", boom),
        Route("/slow-sudo", slow_sudo),
        Route("/slow-set", slow_set),
        Route("/cached", cached),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(SessionMiddleware, store=store, **options)]
    )


def build_fastapi(store: SessionStore, **options: Any) -> Any:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, **options)

    @app.get("/visit")
    async def visit(request: Request) -> PlainTextResponse:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return PlainTextResponse(f"visits {request.session['visits']}")

    @app.get("/peek")
    async def peek(request: Request) -> JSONResponse:
        return JSONResponse({"data": dict(request.session), "new": request.session.new})

    @app.get("/nothing")
    async def nothing() -> PlainTextResponse:
        return PlainTextResponse("no session asked for")

    @app.get("/browse")
    async def browse(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"looked: {request.session.get('user')}")

    @app.post("/login")
    async def login(request: Request, name: str = "ada") -> RedirectResponse:
        session = await regenerate_session(request, drop=["csrf"])
        session["user"] = name
        return RedirectResponse("/peek", status_code=303)

    @app.post("/logout")
    @app.post("/clear")
    async def clear(request: Request) -> PlainTextResponse:
        request.session.clear()
        return PlainTextResponse("bye")

    @app.get("/cart")
    async def cart(request: Request, item: str) -> PlainTextResponse:
        request.session.setdefault("cart", []).append(item)
        return PlainTextResponse("added")

    @app.get("/set")
    async def set_key(request: Request, key: str, value: str) -> PlainTextResponse:
        request.session[key] = value
        await asyncio.sleep(0.05)
        return PlainTextResponse("set")

    @app.get("/slow-visit")
    async def slow_visit(request: Request) -> PlainTextResponse:
        visits = request.session.get("visits", 0)
        await asyncio.sleep(0.05)
        request.session["visits"] = visits + 1
        return PlainTextResponse(f"visits {visits + 1}")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        request.session["streamed"] = True

        async def chunks() -> AsyncIterator[bytes]:
            yield b"chunk one,"
            yield b"chunk two"

        return StreamingResponse(chunks())

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        ws.session["ws"] = "connected"
        await ws.accept()
        await ws.send_text("hello")
        await ws.close()

    @app.get("/boom")
    async def boom(request: Request) -> PlainTextResponse:
        request.session["charged"] = True
        raise Boom("the handler failed")

    @app.get("/slow-sudo")
    async def slow_sudo(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.2)
        session = await regenerate_session(request)
        session["sudo"] = True
        return PlainTextResponse("sudo")

    @app.get("/slow-set")
    async def slow_set(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.2)
        request.session["late"] = True
        return PlainTextResponse("late")

    @app.get("/cached")
    async def cached(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            f"user {request.session.get('user')}", headers={"Cache-Control": CACHE_CONTROL}
        )

    return app


# -- Litestar ------------------------------------------------------------------------------


def build_litestar(store: SessionStore, **options: Any) -> Any:
    @get("/visit")
    async def visit(request: litestar.Request[Any, Any, Any]) -> str:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return f"visits {request.session['visits']}"

    @get("/peek")
    async def peek(request: litestar.Request[Any, Any, Any]) -> dict[str, Any]:
        return {"data": dict(request.session), "new": request.session.new}  # type: ignore[attr-defined]

    @get("/nothing")
    async def nothing() -> str:
        return "no session asked for"

    @get("/browse")
    async def browse(request: litestar.Request[Any, Any, Any]) -> str:
        return f"looked: {request.session.get('user')}"

    @post("/login", status_code=303)
    async def login(request: litestar.Request[Any, Any, Any], name: str = "ada") -> Redirect:
        session = await regenerate_session(request, drop=["csrf"])
        session["user"] = name
        return Redirect("/peek", status_code=303)

    @post("/logout", status_code=200)
    async def logout(request: litestar.Request[Any, Any, Any]) -> str:
        request.clear_session()  # Litestar's own way to log out
        return "bye"

    @post("/clear", status_code=200)
    async def clear(request: litestar.Request[Any, Any, Any]) -> str:
        request.session.clear()
        return "cleared"

    @get("/cart")
    async def cart(request: litestar.Request[Any, Any, Any], item: str) -> str:
        request.session.setdefault("cart", []).append(item)
        return "added"

    @get("/set")
    async def set_key(request: litestar.Request[Any, Any, Any], key: str, value: str) -> str:
        request.session[key] = value
        await asyncio.sleep(0.05)
        return "set"

    @get("/replace")
    async def replace(request: litestar.Request[Any, Any, Any]) -> str:
        request.set_session({"replaced": True})  # Litestar's own way to set it whole
        return "replaced"

    @get("/slow-visit")
    async def slow_visit(request: litestar.Request[Any, Any, Any]) -> str:
        visits = request.session.get("visits", 0)
        await asyncio.sleep(0.05)
        request.session["visits"] = visits + 1
        return f"visits {visits + 1}"

    @get("/stream")
    async def stream(request: litestar.Request[Any, Any, Any]) -> Stream:
        request.session["streamed"] = True

        async def chunks() -> AsyncIterator[bytes]:
            yield b"chunk one,"
            yield b"chunk two"

        return Stream(chunks())

    @websocket("/ws")
    async def ws_handler(socket: LitestarWebSocket[Any, Any, Any]) -> None:
        socket.session["ws"] = "connected"
        await socket.accept()
        await socket.send_text("hello")
        await socket.close()

    @get("/boom")
    async def boom(request: litestar.Request[Any, Any, Any]) -> str:
        request.session["charged"] = True
        raise Boom("the handler failed")

    @get("/slow-sudo")
    async def slow_sudo(request: litestar.Request[Any, Any, Any]) -> str:
        await asyncio.sleep(0.2)
        session = await regenerate_session(request)
        session["sudo"] = True
        return "sudo"

    @get("/slow-set")
    async def slow_set(request: litestar.Request[Any, Any, Any]) -> str:
        await asyncio.sleep(0.2)
        request.session["late"] = True
        return "late"

    @get("/cached")
    async def cached(request: litestar.Request[Any, Any, Any]) -> litestar.Response[str]:
        return litestar.Response(
            f"user {request.session.get('user')}", headers={"Cache-Control": CACHE_CONTROL}
        )

    handlers = [
        visit, peek, nothing, browse, login, logout, clear, cart, set_key, replace,
        slow_visit, stream, ws_handler, boom, slow_sudo, slow_set, cached,
    ]  # fmt: skip
    # Litestar runs middleware per route, not for lifespan: on_shutdown closes the store.
    return Litestar(
        route_handlers=handlers,
        middleware=[DefineMiddleware(SessionMiddleware, store=store, **options)],
        on_shutdown=[store.close],
        logging_config=None,  # keep the test's log capture
    )


BUILDERS = {
    "aiohttp": build_aiohttp,
    "aiohttp-session": build_aiohttp_session,
    "starlette": build_starlette,
    "fastapi": build_fastapi,
    "litestar": build_litestar,
}
