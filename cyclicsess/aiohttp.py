"""aiohttp integration: one ``setup`` call, ``get_session`` / ``new_session`` in handlers.

::

    from cyclicsess.aiohttp import setup, get_session

    setup(app, SessionStore("sessions"))

    async def handler(request):
        session = await get_session(request)      # read on first use only
        session["visits"] = session.get("visits", 0) + 1
        return web.Response(text=str(session["visits"]))

A thin translation of :mod:`cyclicsess.lifecycle`, which decides what is
read, saved, touched or destroyed and which cookie is set: this module hands
it the request's cookies and scheme, commits before the response's headers
leave (plain and streamed responses, raised ``HTTPException`` s and WebSocket
handshakes alike), and turns the commit into headers, or into the 409 or 503
it asks for. A handler that raises anything else saves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from aiohttp import web

from .cookies import CookieSettings, is_https
from .errors import ConfigurationError, SessionUnavailable
from .lifecycle import RequestSession, SessionConfig
from .session import Commit, Session
from .store import SessionStore

__all__ = [
    "STORE_KEY",
    "CookieSettings",
    "Session",
    "commit_session",
    "get_session",
    "new_session",
    "setup",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The app's store, for handlers that need it directly: ``request.app[STORE_KEY]``.
STORE_KEY = web.AppKey("cyclicsess.store", SessionStore)
_STATE = web.RequestKey("cyclicsess.request_session", RequestSession)


def request_session(config: SessionConfig, request: web.BaseRequest) -> RequestSession:
    """The lifecycle of ``request``'s session."""
    return RequestSession(
        config,
        cookie_headers=request.headers.getall("Cookie", ()),
        https=is_https(request.scheme, request.headers, trust_forwarded=config.trust_forwarded),
    )


def apply(commit: Commit, response: web.StreamResponse) -> None:
    """Put a commit's cookie, ``Vary`` and ``Cache-Control`` on a response not yet sent."""
    changes = commit.headers(
        vary=response.headers.get("Vary"), cache_control=response.headers.get("Cache-Control")
    )
    if changes.set_cookie is not None:
        response.headers.add("Set-Cookie", changes.set_cookie)
    if changes.vary is not None:
        response.headers["Vary"] = changes.vary
    if changes.cache_control is not None:
        response.headers["Cache-Control"] = changes.cache_control


def replacement(commit: Commit) -> web.Response:
    """The 409 or 503 a commit asks for instead of the handler's response."""
    response = web.Response(status=commit.status or 503, text=commit.reason)
    apply(commit, response)
    return response


def _state(request: web.Request) -> RequestSession:
    try:
        return request[_STATE]
    except KeyError:
        raise ConfigurationError(
            "no session middleware: call cyclicsess.aiohttp.setup(app, store)"
        ) from None


async def get_session(request: web.Request) -> Session:
    """The request's session, read from the store on first use.

    Raises:
        aiohttp.web.HTTPServiceUnavailable: the store failed and the app was
            set up with ``on_store_error="fail"`` (the default).
    """
    try:
        return await _state(request).load()
    except SessionUnavailable as exc:
        raise web.HTTPServiceUnavailable(text="session store unavailable, try again") from exc


async def new_session(request: web.Request, *, drop: Iterable[str] = ()) -> Session:
    """Move the request's session to a new id (call it at login); data carries over.

    The move happens when the response is committed, with the request's final
    data; the old id is dead from then on, so an id planted before login is
    worthless. ``drop`` names keys that must not survive (a CSRF token).

    Raises:
        aiohttp.web.HTTPServiceUnavailable: as :func:`get_session`.
    """
    try:
        return await _state(request).regenerate(drop=drop)
    except SessionUnavailable as exc:
        raise web.HTTPServiceUnavailable(text="session store unavailable, try again") from exc


async def commit_session(request: web.Request) -> Commit:
    """Save the session now, before the response is built (to show what was saved).

    The response still gets the cookie, and is replaced by a 409 or 503 if the
    commit asks for one; changes made to the session afterwards are not saved.
    """
    return await _state(request).commit()


def setup(
    app: web.Application,
    store: SessionStore,
    *,
    cookie: CookieSettings | None = None,
    signing_secret: str | bytes | None = None,
    trust_forwarded: bool = False,
    on_store_error: Literal["fail", "warn"] = "fail",
    merge_attempts: int = 3,
) -> None:
    """Install the session middleware on ``app``; the store is closed with the app.

    Args:
        app: the application.
        store: where sessions live.
        cookie: cookie settings (default: ``__Host-session`` over HTTPS,
            ``session`` over HTTP; HttpOnly, SameSite=Lax, Max-Age = the
            store's ttl).
        signing_secret: if set (>= 16 bytes), cookies carry an HMAC of the id
            and forged ones are refused before any database read.
        trust_forwarded: believe ``Forwarded`` / ``X-Forwarded-Proto`` about
            HTTPS (only behind a proxy that sets them).
        on_store_error: ``"fail"`` answers 503 when DynamoDB fails during a
            request; ``"warn"`` logs it and serves the request without a saved
            session.
        merge_attempts: how often a conflicting save is merged and retried.
    """
    config = SessionConfig.of(
        store,
        cookie=cookie,
        signing_secret=signing_secret,
        trust_forwarded=trust_forwarded,
        on_store_error=on_store_error,
        merge_attempts=merge_attempts,
    )

    @web.middleware
    async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = request[_STATE] = request_session(config, request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if not exc.prepared:
                commit = await state.commit(status=exc.status)
                if commit.status is not None:
                    return replacement(commit)
                apply(commit, exc)
            raise
        except BaseException:
            state.abandon()  # a failed handler saves nothing, not even via on_prepare
            raise
        if not response.prepared:
            commit = await state.commit(status=response.status)
            if commit.status is not None:
                return replacement(commit)
            apply(commit, response)
        return response

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        # Streamed responses and WebSocket handshakes are prepared inside the
        # handler: commit before their headers leave. A 409 or 503 cannot be
        # answered any more; the session is then not saved (and logged).
        state = request.get(_STATE)
        if state is None or state.committed:
            return
        apply(await state.commit(status=response.status), response)

    async def close_store(_: web.Application) -> None:
        await store.close()

    app[STORE_KEY] = store
    app.middlewares.append(session_middleware)
    app.on_response_prepare.append(on_prepare)
    app.on_cleanup.append(close_store)
