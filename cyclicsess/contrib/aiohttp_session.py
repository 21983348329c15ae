"""A storage for aiohttp-session: an existing app switches with two lines.

::

    import aiohttp_session
    from cyclicsess.contrib.aiohttp_session import DynamoDBStorage

    aiohttp_session.setup(app, DynamoDBStorage(SessionStore("sessions")))

Handlers keep calling ``aiohttp_session.get_session`` and ``new_session``.
The storage translates aiohttp-session's session into the shared lifecycle
(:mod:`cyclicsess.lifecycle`), which decides what is read, saved, touched,
moved or destroyed, as for every adapter; a conflicting save is refused with
409 (no merging). How it differs from aiohttp-session's own storages is listed
in the README.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import aiohttp_session
from aiohttp import web

from ..aiohttp import apply, request_session
from ..cookies import CookieSettings
from ..errors import SessionUnavailable
from ..lifecycle import RequestSession, SessionConfig
from ..session import Session
from ..store import SessionStore

__all__ = ["DynamoDBStorage"]

_STATE = web.RequestKey("cyclicsess.contrib.aiohttp_session.state", RequestSession)


class _StoredSession(aiohttp_session.Session):
    """An aiohttp-session ``Session`` over the lifecycle's session of the request.

    Args:
        session: the lifecycle's session, or None for one ``new_session()`` made.
        max_age: the cookie's Max-Age in seconds.
    """

    def __init__(self, session: Session | None, max_age: int | None) -> None:
        data: aiohttp_session.SessionData | None = None
        if session is not None and session.created_at is not None:
            data = {"created": int(session.created_at.timestamp()), "session": dict(session)}
        # Not max_age=max_age: Session would empty a session older than max_age
        # since its creation. The store enforces lifetimes; max_age is the cookie's.
        super().__init__(
            session.id if session is not None else None,
            data=data,
            new=data is None,
            max_age=None,
        )
        self.max_age = max_age
        self.replaces = session is None  # made by new_session(): it replaces the old one
        self.invalidated = False
        # aiohttp-session's middleware saves only sessions flagged as changed, and
        # misses in-place changes: let it always call save_session, which compares.
        self._changed = True

    def invalidate(self) -> None:
        """Empty the session; it is deleted at save, and data set later gets a new id."""
        super().invalidate()
        self.invalidated = True
        self._new = True  # so a new identity can be set when it is saved


class DynamoDBStorage(aiohttp_session.AbstractStorage):
    """An aiohttp-session storage keeping sessions in DynamoDB through a :class:`SessionStore`.

    The cookie holds only the session id (256 random bits); the table holds a
    hash of it. A cookie that is not a well-formed id is ignored without a
    database read.

    Errors: a store that fails while the session is read or saved answers
    ``503`` (``aiohttp.web.HTTPServiceUnavailable``); a save that finds the
    session saved meanwhile by a concurrent request answers ``409``
    (``aiohttp.web.HTTPConflict``) and saves nothing of this request.
    ``EncodeError`` and ``SessionTooLarge`` propagate.

    Args:
        store: where sessions live; its ``ttl`` and ``touch_interval`` apply.
        cookie_name: the session cookie's name.
        domain: the cookie's domain, or None for the request's host only.
        max_age: the cookie's Max-Age in seconds (default: the store's ``ttl``),
            sent with ``Expires``; renewed with every write or touch. A handler
            may set ``session.max_age`` for one response.
        path: the cookie's path.
        secure: ``Secure`` always (True), never (False), or when the request
            itself is HTTPS (None).
        httponly: hide the cookie from JavaScript.
        samesite: ``"Lax"``, ``"Strict"`` or ``"None"`` (None means ``"Lax"``,
            what browsers assume).

    Raises:
        TypeError: ``store`` is not a :class:`~cyclicsess.store.SessionStore`.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        cookie_name: str = "AIOHTTP_SESSION",
        domain: str | None = None,
        max_age: int | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = "Lax",
    ) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError(f"store must be a cyclicsess.SessionStore, not {type(store).__name__}")
        super().__init__(
            cookie_name=cookie_name,
            domain=domain,
            max_age=int(store.ttl_s) if max_age is None else max_age,
            path=path,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )
        self.store = store
        self._config = SessionConfig.of(
            store,
            cookie=CookieSettings(
                name=cookie_name,
                path=path,
                domain=domain,
                max_age=dt.timedelta(seconds=self.max_age or store.ttl_s),
                secure=secure,
                samesite=samesite or "Lax",  # type: ignore[arg-type]
                httponly=httponly,
            ),
            on_conflict="refuse",
        )

    def _state(self, request: web.Request) -> RequestSession:
        state = request.get(_STATE)
        if state is None:
            state = request[_STATE] = request_session(self._config, request)
        return state

    async def _loaded(self, request: web.Request) -> Session:
        try:
            return await self._state(request).load()
        except SessionUnavailable as exc:
            raise web.HTTPServiceUnavailable(text="session store unavailable, try again") from exc

    async def new_session(self) -> aiohttp_session.Session:
        """An empty session; saved under a new id, replacing the request's old one.

        Called by ``aiohttp_session.new_session(request)``.
        """
        return _StoredSession(None, self.max_age)

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        """The request's stored session, or a new empty one.

        Called by ``aiohttp_session.get_session(request)`` on first use.

        Args:
            request: the request whose cookie names the session.
        """
        return _StoredSession(await self._loaded(request), self.max_age)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        """Hand the session's final state to the lifecycle, commit, set the cookie.

        Called by aiohttp-session's middleware before the response is sent.

        Args:
            request: the request being answered.
            response: the response the cookie is set on.
            session: the request's session (the loaded one or a new one).

        Raises:
            aiohttp.web.HTTPConflict: another request saved the session first.
            aiohttp.web.HTTPServiceUnavailable: the store failed.
        """
        state = self._state(request)
        core = await self._loaded(request)
        replaces = isinstance(session, _StoredSession) and session.replaces
        if replaces:
            await state.regenerate()  # new_session(): the old id dies with this request
        if isinstance(session, _StoredSession) and session.invalidated:
            core.invalidate()
        data: dict[str, Any] = dict(session)
        for key in [key for key in core if key not in data]:
            del core[key]
        for key, value in data.items():  # assigned only where it differs: aiohttp-session
            if key not in core or core[key] != value:  # cannot say what the handler set
                core[key] = value
        commit = await state.commit(status=response.status)
        if commit.status == 409:
            raise web.HTTPConflict(text=commit.reason)
        if commit.status is not None:
            raise web.HTTPServiceUnavailable(text=commit.reason)
        if commit.cookie is not None and commit.cookie.max_age and session.max_age:
            commit = dataclasses.replace(
                commit, cookie=dataclasses.replace(commit.cookie, max_age=session.max_age)
            )
        apply(commit, response)
        if core.id is not None and session.new and not session.empty:
            session.set_new_identity(core.id)
