"""The demo shop on aiohttp: log in, count visits, fill a cart, log out.

make demo                    # dynalite on disk under .run/demo-data, app on 127.0.0.1:8080
make demo PORT=8081          # another port
CYCLIC_DB=table make demo    # real DynamoDB, with your AWS_* settings
"""

from __future__ import annotations

from aiohttp import web

from cyclicsess import CookieSettings, SessionStore
from cyclicsess.aiohttp import STORE_KEY, commit_session, get_session, new_session, setup
from examples import shop
from examples.serve import start


async def render(request: web.Request, body: str) -> web.Response:
    session = await get_session(request)
    await commit_session(request)  # saved now: the page shows what the store holds
    text = shop.page("aiohttp", request.app[STORE_KEY], session, body)
    return web.Response(content_type="text/html", text=text)


async def home(request: web.Request) -> web.Response:
    session = await get_session(request)
    shop.visit(session)
    await commit_session(request)  # saved first: the list below includes this visit
    store = request.app[STORE_KEY]
    sessions = await shop.sessions_of(store, session)
    current = store.storage_key(session.id) if session.id else None
    return await render(request, shop.home(session, shop.your_sessions(sessions, current)))


async def logout_others(request: web.Request) -> web.Response:
    session = await get_session(request)
    if "user" in session and session.id:
        await request.app[STORE_KEY].revoke_user(session["user"], keep=session.id)
    raise web.HTTPSeeOther("/")


async def login(request: web.Request) -> web.Response:
    name = str((await request.post()).get("name", "")).strip()
    shop.login(await new_session(request, drop=["csrf"]), name)  # a new id at login
    raise web.HTTPSeeOther("/")


async def add_to_cart(request: web.Request) -> web.Response:
    item = str((await request.post()).get("item", "")).strip()
    shop.add_to_cart(await get_session(request), item)
    raise web.HTTPSeeOther("/")


async def empty_cart(request: web.Request) -> web.Response:
    (await get_session(request)).pop("cart", None)
    raise web.HTTPSeeOther("/")


async def logout(request: web.Request) -> web.Response:
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/")


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
    app.router.add_post("/logout-others", logout_others)
    return app


def main() -> None:
    port = start(__doc__.splitlines()[0], "aiohttp")
    web.run_app(make_app(shop.make_store()), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
