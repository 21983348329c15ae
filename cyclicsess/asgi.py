"""Pure ASGI session middleware: Starlette, FastAPI, Litestar and any ASGI app.

::

    from cyclicsess import SessionStore
    from cyclicsess.asgi import SessionMiddleware, regenerate_session

    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, store=store)])
    # FastAPI: app.add_middleware(SessionMiddleware, store=store)
    # Litestar: Litestar(handlers, middleware=[DefineMiddleware(SessionMiddleware, store=store)])

The session is ``scope["session"]``, so ``request.session`` works in all
three. A thin translation of :mod:`cyclicsess.lifecycle`: the session is
loaded before the app (one read, and only with a well-formed cookie); the
commit runs at ``http.response.start`` (its ``Set-Cookie`` appended to the
app's headers) or at ``websocket.accept`` (the cookie rides in the accept's
headers); a 409 or 503 the commit asks for replaces the response before
anything was sent. An app that raises saves nothing. ``lifespan`` passes
through, and the store is closed when the app has shut down.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Literal

from .cookies import CookieSettings, is_https
from .errors import ConfigurationError, SessionUnavailable
from .lifecycle import RequestSession, SessionConfig
from .session import Commit, Session
from .store import SessionStore

__all__ = ["SessionMiddleware", "commit_session", "regenerate_session"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware keeps the request's lifecycle in the scope.
STATE_KEY = "cyclicsess.request_session"


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the first of each)."""
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _cookie_headers(scope: Scope) -> list[str]:
    return [v.decode("latin-1") for n, v in scope.get("headers", ()) if n.lower() == b"cookie"]


def _with_commit(
    headers: Iterable[tuple[bytes, bytes]], commit: Commit
) -> list[tuple[bytes, bytes]]:
    """The response's headers with the commit's cookie, ``Vary`` and ``Cache-Control``."""
    kept = list(headers)
    named = {n.lower(): v.decode("latin-1") for n, v in kept}
    changes = commit.headers(vary=named.get(b"vary"), cache_control=named.get(b"cache-control"))
    if changes.vary is not None:
        kept = [(n, v) for n, v in kept if n.lower() != b"vary"]
        kept.append((b"vary", changes.vary.encode("latin-1")))
    if changes.cache_control is not None:
        kept.append((b"cache-control", changes.cache_control.encode("latin-1")))
    if changes.set_cookie is not None:
        kept.append((b"set-cookie", changes.set_cookie.encode("latin-1")))
    return kept


def _adopt_scope_session(scope: Scope, session: Session) -> None:
    """Take over what the app left in ``scope["session"]`` (Litestar's set/clear_session).

    Our session: as it is. Another mapping, a dataclass or a pydantic model:
    the session's new data. Removed, None or a sentinel (a class or an enum
    member, as Litestar's ``Empty``): a logout.
    """
    value = scope.get("session")
    if value is session:
        return
    if value is None or isinstance(value, (type, enum.Enum)):  # a sentinel: no session
        session.invalidate()
        return
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"scope['session'] must be a mapping, not {type(value).__name__}")
    session.clear()
    session.update(value)


class SessionMiddleware:
    """ASGI middleware keeping ``scope["session"]`` in DynamoDB.

    Args:
        app: the ASGI app it wraps (Starlette passes it positionally, Litestar
            by keyword).
        store: where sessions live.
        cookie: cookie settings (default: ``__Host-session`` over HTTPS,
            ``session`` over HTTP; HttpOnly, SameSite=Lax, Max-Age = the
            store's ttl; the path follows the app's ``root_path``).
        signing_secret: if set (>= 16 bytes), cookies carry an HMAC of the id
            and forged ones are refused before any database read.
        trust_forwarded: believe ``Forwarded`` / ``X-Forwarded-Proto`` about
            HTTPS (only behind a proxy that sets them).
        on_store_error: ``"fail"`` answers 503 when DynamoDB fails during a
            request; ``"warn"`` logs it and serves the request unsaved.
        merge_attempts: how often a conflicting save is merged and retried.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        *,
        cookie: CookieSettings | None = None,
        signing_secret: str | bytes | None = None,
        trust_forwarded: bool = False,
        on_store_error: Literal["fail", "warn"] = "fail",
        merge_attempts: int = 3,
    ) -> None:
        self.app = app
        self.config = SessionConfig.of(
            store,
            cookie=cookie,
            signing_secret=signing_secret,
            trust_forwarded=trust_forwarded,
            on_store_error=on_store_error,
            merge_attempts=merge_attempts,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: ``http`` and ``websocket`` get a session."""
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._closing_at_shutdown(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = RequestSession(
            self.config,
            cookie_headers=_cookie_headers(scope),
            https=is_https(
                scope.get("scheme", "http"),
                _headers(scope),
                trust_forwarded=self.config.trust_forwarded,
            ),
            root_path=scope.get("root_path", ""),
        )
        try:
            session = await state.load()
        except SessionUnavailable:
            await _refuse(scope, send, 503, "session store unavailable, try again")
            return
        scope["session"] = session
        scope[STATE_KEY] = state
        try:
            await self.app(scope, receive, _CommittingSend(scope, state, session, send))
        except BaseException:
            state.abandon()
            raise

    def _closing_at_shutdown(self, send: Send) -> Send:
        async def closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.config.store.close()
            await send(message)

        return closing


class _CommittingSend:
    """The app's ``send``, committing the session before the response leaves."""

    def __init__(self, scope: Scope, state: RequestSession, session: Session, send: Send) -> None:
        self.scope = scope
        self.state = state
        self.session = session
        self.send = send
        self.replaced = False  # the commit's 409/503 went out instead: drop the app's

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if self.replaced:
            return
        if kind == "http.response.start":
            _adopt_scope_session(self.scope, self.session)
            commit = await self.state.commit(status=message["status"])
            if commit.status is not None:
                self.replaced = True
                await _refuse(self.scope, self.send, commit.status, commit.reason, commit)
                return
            message = dict(message, headers=_with_commit(message.get("headers", ()), commit))
        elif kind == "websocket.accept":
            _adopt_scope_session(self.scope, self.session)
            commit = await self.state.commit()
            if commit.status is not None:
                self.replaced = True
                await _refuse(self.scope, self.send, commit.status, commit.reason, commit)
                return
            message = dict(message, headers=_with_commit(message.get("headers", ()), commit))
        await self.send(message)


async def _refuse(
    scope: Scope, send: Send, status: int, reason: str, commit: Commit | None = None
) -> None:
    """Answer ``status`` instead of the app: an HTTP response, or a refused handshake."""
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if commit is not None:
        headers = _with_commit(headers, commit)
    body = reason.encode()
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1013 if status == 503 else 1008})


def _scope_of(request_or_scope: Any) -> Scope:
    """The ASGI scope of a Starlette, FastAPI or Litestar request, or the scope itself."""
    scope: Scope = getattr(request_or_scope, "scope", request_or_scope)
    return scope


def _state_of(request_or_scope: Any) -> RequestSession:
    scope = _scope_of(request_or_scope)
    state = scope.get(STATE_KEY) if isinstance(scope, Mapping) else None
    if not isinstance(state, RequestSession):
        raise ConfigurationError("no cyclicsess SessionMiddleware runs for this request")
    return state


async def commit_session(request_or_scope: Any) -> Commit:
    """Save the session now, before the response is built (to show what was saved).

    The response still gets the cookie, and is replaced by a 409 or 503 if the
    commit asks for one; changes made to the session afterwards are not saved.

    Args:
        request_or_scope: a Starlette, FastAPI or Litestar request, or an ASGI scope.
    """
    state = _state_of(request_or_scope)
    _adopt_scope_session(_scope_of(request_or_scope), await state.load())
    return await state.commit()


async def regenerate_session(request_or_scope: Any, *, drop: Iterable[str] = ()) -> Session:
    """Move the session to a new id when the response is committed (call it at login).

    The data is kept but for the keys in ``drop``; the old id is dead once the
    response is committed.

    Args:
        request_or_scope: a Starlette, FastAPI or Litestar request, or an ASGI scope.
        drop: keys that must not survive (a CSRF token).

    Raises:
        ConfigurationError: no :class:`SessionMiddleware` runs for this request.
    """
    return await _state_of(request_or_scope).regenerate(drop=drop)
