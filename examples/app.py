"""A small aiohttp shop on cyclicsess: log in, count visits, fill a cart, log out.

    make demo                    # dynalite on disk under .run/demo-data, app on 127.0.0.1:8080
    CYCLIC_DB=table make demo    # real DynamoDB, with your AWS_* settings

Each page shows the hash the session is stored under, its version and when it
expires, so you can watch the store work.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import socket
from datetime import timedelta

from aiohttp import web

from cyclicsess import SessionStore
from cyclicsess.aiohttp import STORE_KEY, CookieSettings, Session, get_session, new_session, setup

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cyclicsess demo</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}
form{{display:inline}} code{{background:#eee;padding:0 .2em}}</style></head>
<body>
<h1>cyclicsess demo</h1>
{body}
<hr>
<p id="store">stored under <code id="hash">{hash}</code>,
version <span id="version">{version}</span>,
expires <span id="expires">{expires}</span></p>
</body></html>"""


def render(store: SessionStore, session: Session, body: str) -> web.Response:
    sid = session.id
    return web.Response(
        content_type="text/html",
        text=PAGE.format(
            body=body,
            hash=html.escape(store.storage_key(sid)) if sid else "(nothing stored yet)",
            version=session.version or "-",
            expires=session.expires_at.isoformat() if session.expires_at else "-",
        ),
    )


async def home(request: web.Request) -> web.Response:
    session = await get_session(request)
    user = session.get("user")
    if user is None:
        body = """<p id="greeting">You are not logged in.</p>
<form method="post" action="/login"><input name="name" placeholder="your name" required>
<button id="login">Log in</button></form>"""
        return render(request.app[STORE_KEY], session, body)
    session["visits"] = session.get("visits", 0) + 1
    cart = session.get("cart", [])
    items = "".join(f"<li>{html.escape(item)}</li>" for item in cart) or "<li>(empty)</li>"
    body = f"""<p id="greeting">Hello, {html.escape(user)}!</p>
<p>Visits this session: <span id="visits">{session["visits"]}</span></p>
<h2>Cart</h2><ul id="cart">{items}</ul>
<form method="post" action="/cart"><input name="item" placeholder="item" required>
<button id="add">Add</button></form>
<form method="post" action="/cart/empty"><button id="empty">Empty cart</button></form>
<form method="post" action="/logout"><button id="logout">Log out</button></form>"""
    return render(request.app[STORE_KEY], session, body)


async def login(request: web.Request) -> web.Response:
    name = str((await request.post()).get("name", "")).strip()[:64]
    if name:
        session = await new_session(request)  # a new id at login: no session fixation
        session["user"] = name
    raise web.HTTPSeeOther("/")


async def add_to_cart(request: web.Request) -> web.Response:
    item = str((await request.post()).get("item", "")).strip()[:64]
    session = await get_session(request)
    if item and "user" in session:
        session.setdefault("cart", []).append(item)
    raise web.HTTPSeeOther("/")


async def empty_cart(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.pop("cart", None)
    raise web.HTTPSeeOther("/")


async def logout(request: web.Request) -> web.Response:
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/")


def local_endpoint() -> str | None:
    """The local server `make demo` started, if any."""
    servers = os.environ.get("CYCLICSESS_TEST_SERVERS", "")
    return next((e.split("=", 1)[1] for e in servers.split(",") if "=" in e), None)


def make_app(store: SessionStore) -> web.Application:
    """The demo application on ``store`` (which it creates the table of and closes)."""
    app = web.Application()
    setup(app, store, cookie=CookieSettings(name="demo_session"))

    async def ensure_table(_: web.Application) -> None:
        await store.ensure_table()

    app.on_startup.append(ensure_table)
    app.router.add_get("/", home)
    app.router.add_post("/login", login)
    app.router.add_post("/cart", add_to_cart)
    app.router.add_post("/cart/empty", empty_cart)
    app.router.add_post("/logout", logout)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    store = SessionStore(
        os.environ.get("CYCLIC_DB", "cyclicsess-demo"),
        endpoint_url=local_endpoint(),
        ttl=timedelta(hours=1),
        secret=os.environ.get("SESSION_SECRET") or None,
    )
    try:
        with socket.create_server(("127.0.0.1", args.port)):
            pass  # free: aiohttp binds it next
    except OSError as exc:
        raise SystemExit(
            f"port {args.port} on 127.0.0.1 is not free ({os.strerror(exc.errno or 0)}): "
            f"try make demo PORT={args.port + 1}"
        ) from None
    print(f"cyclicsess demo: http://127.0.0.1:{args.port}/  (Ctrl-C stops it)", flush=True)
    web.run_app(make_app(store), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
