"""The demo shop on FastAPI: the same pages as the aiohttp demo, on the ASGI middleware.

make demo-fastapi            # dynalite on disk under .run/demo-data, app on 127.0.0.1:8080
make demo-fastapi PORT=8081
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cyclicsess import CookieSettings, Session, SessionStore
from cyclicsess.asgi import SessionMiddleware, commit_session, regenerate_session
from examples import shop
from examples.serve import start


def make_app(store: SessionStore) -> FastAPI:
    """The demo application on ``store`` (which it creates the table of and closes)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.ensure_table()
        yield  # the middleware closes the store when the app shuts down

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(SessionMiddleware, store=store, cookie=CookieSettings(name="demo_session"))

    def session_of(request: Request) -> Session:
        return cast(Session, request.session)  # the middleware's, behind Starlette's dict type

    async def render(request: Request, body: str) -> HTMLResponse:
        await commit_session(request)  # saved now: the page shows what the store holds
        return HTMLResponse(shop.page("FastAPI", store, session_of(request), body))

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        session = session_of(request)
        shop.visit(session)
        await commit_session(request)  # saved first: the list below includes this visit
        sessions = await shop.sessions_of(store, session)
        current = store.storage_key(session.id) if session.id else None
        return await render(request, shop.home(session, shop.your_sessions(sessions, current)))

    @app.post("/logout-others")
    async def logout_others(request: Request) -> RedirectResponse:
        session = session_of(request)
        if "user" in session and session.id:
            await store.revoke_user(session["user"], keep=session.id)
        return RedirectResponse("/", status_code=303)

    @app.post("/login")
    async def login(request: Request, name: str = Form("")) -> RedirectResponse:
        shop.login(await regenerate_session(request, drop=["csrf"]), name.strip())
        return RedirectResponse("/", status_code=303)

    @app.post("/cart")
    async def add_to_cart(request: Request, item: str = Form("")) -> RedirectResponse:
        shop.add_to_cart(session_of(request), item.strip())
        return RedirectResponse("/", status_code=303)

    @app.post("/cart/empty")
    async def empty_cart(request: Request) -> RedirectResponse:
        request.session.pop("cart", None)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> RedirectResponse:
        request.session.clear()  # deletes the record, expires the cookie
        return RedirectResponse("/", status_code=303)

    return app


def main() -> None:
    port = start(__doc__.splitlines()[0], "FastAPI")
    uvicorn.run(make_app(shop.make_store()), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
