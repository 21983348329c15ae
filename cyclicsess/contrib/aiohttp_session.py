"""A storage for aiohttp-session: an existing app switches with two lines.

::

    import aiohttp_session
    from cyclicsess.contrib.aiohttp_session import DynamoDBStorage

    aiohttp_session.setup(app, DynamoDBStorage(SessionStore("sessions")))

Handlers keep calling ``aiohttp_session.get_session`` and ``new_session``.
Unlike aiohttp-session's own storages:

- ``session.invalidate()`` (or emptying a stored session) deletes the item and
  expires the cookie, instead of saving an empty session.
- ``new_session(request)`` deletes the session the request's cookie named and
  the new one gets a fresh id from the store, so an id planted before login is
  worthless.
- A session is written only when its encoded data changed (in-place changes to
  nested values included, no ``session.changed()`` needed); an unchanged one
  is touched as the store's ``touch_interval`` allows. A visitor who stores
  nothing gets no cookie and causes no write.
- Lifetimes are the store's (``ttl`` since the last write or touch, and
  ``absolute_lifetime`` since creation); ``max_age`` only sets the cookie.
- Only the session dict is stored; ``session.created`` is the item's creation
  time.

Like aiohttp-session, nothing is saved for streamed responses or WebSocket
handshakes, and the store is not closed with the app (close it in
``app.on_cleanup``).
"""

from __future__ import annotations

import logging

import aiohttp_session
from aiohttp import web

from .._item import SessionRecord
from ..errors import SessionConflict, SessionNotFound
from ..ids import is_well_formed
from ..store import SessionStore

__all__ = ["DynamoDBStorage"]

log = logging.getLogger("cyclicsess.contrib.aiohttp_session")


class _StoredSession(aiohttp_session.Session):
    """An aiohttp-session ``Session`` that remembers the record it was loaded from."""

    def __init__(
        self, record: SessionRecord | None, baseline: bytes | None, max_age: int | None
    ) -> None:
        data: aiohttp_session.SessionData | None = None
        if record is not None:
            data = {"created": int(record.created_at.timestamp()), "session": record.data}
        # Not max_age=max_age: Session would empty a session older than max_age
        # since its creation. The store enforces lifetimes; max_age is the cookie's.
        super().__init__(
            record.id if record is not None else None,
            data=data,
            new=record is None,
            max_age=None,
        )
        self.max_age = max_age
        self._record = record
        self._baseline = baseline  # the data as loaded, encoded: what "changed" means
        self._invalidated: str | None = None  # the stored id invalidate() ended
        # aiohttp-session's middleware saves only sessions flagged as changed, and
        # misses in-place changes: let it always call save_session, which compares.
        self._changed = True

    def invalidate(self) -> None:
        """Empty the session; its stored id is deleted at save, data set later gets a new id."""
        super().invalidate()
        if self._record is not None:
            self._invalidated = self._record.id
            self._record = self._baseline = None
            self._new = True  # so a new identity can be set when it is saved


_LOADED = web.RequestKey("cyclicsess.contrib.aiohttp_session.loaded", _StoredSession)


class DynamoDBStorage(aiohttp_session.AbstractStorage):
    """An aiohttp-session storage keeping sessions in DynamoDB through a :class:`SessionStore`.

    The cookie holds only the session id (256 random bits); the table holds a
    hash of it. A cookie that is not a well-formed id is ignored without a
    database read.

    Errors: aiohttp-session has no error policy, so the store's
    :class:`~cyclicsess.errors.StoreUnavailable` and
    :class:`~cyclicsess.errors.DynamoDBError` propagate out of ``get_session``
    and out of aiohttp-session's middleware (a 500 unless a middleware of the
    app's own, installed before ``aiohttp_session.setup``, answers them).
    ``EncodeError`` and ``SessionTooLarge`` propagate too. A save that finds
    the session saved meanwhile by a concurrent request (a newer version)
    raises ``aiohttp.web.HTTPConflict`` (409) and saves nothing of this request.

    Args:
        store: where sessions live; its ``ttl`` and ``touch_interval`` apply.
        cookie_name: the session cookie's name.
        domain: the cookie's domain, or None for the request's host only.
        max_age: the cookie's Max-Age in seconds (default: the store's ``ttl``);
            renewed with every write or touch. A handler may set
            ``session.max_age`` for one response.
        path: the cookie's path.
        secure: ``Secure`` always (True), never (False), or when the request
            itself is HTTPS (None; ``request.secure``).
        httponly: hide the cookie from JavaScript.
        samesite: ``"Lax"``, ``"Strict"``, ``"None"`` or None (no attribute).
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

    async def new_session(self) -> aiohttp_session.Session:
        """An empty session; saved under a new id, replacing the request's old one.

        Called by ``aiohttp_session.new_session(request)``.
        """
        return _StoredSession(None, None, self.max_age)

    def _cookie_sid(self, request: web.Request) -> str | None:
        value = self.load_cookie(request)
        return value if value is not None and is_well_formed(value) else None

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        """The request's stored session, or a new empty one.

        Called by ``aiohttp_session.get_session(request)`` on first use.

        Args:
            request: the request whose cookie names the session.
        """
        sid = self._cookie_sid(request)
        record = await self.store.get(sid) if sid is not None else None
        baseline = self.store.codec.encode(record.data) if record is not None else None
        session = _StoredSession(record, baseline, self.max_age)
        request[_LOADED] = session
        return session

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        """Write, touch, create or delete the session and set or expire the cookie.

        Called by aiohttp-session's middleware before the response is sent.

        Args:
            request: the request being answered.
            response: the response the cookie is set on.
            session: the request's session (the loaded one or a new one).

        Raises:
            aiohttp.web.HTTPConflict: another request saved the session first.
        """
        if isinstance(session, _StoredSession) and session._record is not None:
            await self._save_stored(request, response, session, session._record)
            return
        replaced = self._replaced_sid(request)
        if replaced is not None:
            await self.store.destroy(replaced)  # first: the old id dies even if create fails
        if not session.empty:
            sid = await self.store.create(dict(session))
            session.set_new_identity(sid)
            self._set_cookie(request, response, sid, session.max_age)
        elif self.load_cookie(request) is not None:
            self._expire_cookie(request, response)

    def _replaced_sid(self, request: web.Request) -> str | None:
        """The stored session a new session replaces, if any."""
        loaded = request.get(_LOADED)
        if loaded is None:  # new_session() without get_session(): trust the cookie
            return self._cookie_sid(request)
        invalidated: str | None = loaded._invalidated
        if invalidated is not None:
            return invalidated
        return loaded._record.id if loaded._record is not None else None

    async def _save_stored(
        self,
        request: web.Request,
        response: web.StreamResponse,
        session: _StoredSession,
        record: SessionRecord,
    ) -> None:
        if session.empty:
            await self.store.destroy(record.id)
            self._expire_cookie(request, response)
            return
        data = dict(session)
        if self.store.codec.encode(data) != session._baseline:
            try:
                await self.store.set(record.id, data, version=record.version)
            except SessionNotFound:
                # Ended meanwhile: the logout expired the cookie; keep any newer one.
                log.warning("session ended during the request; its changes were dropped")
                return
            except SessionConflict as exc:
                raise web.HTTPConflict(
                    text="the session was changed by a concurrent request; retry"
                ) from exc
            self._set_cookie(request, response, record.id, session.max_age)
        elif await self.store.touch(record):
            self._set_cookie(request, response, record.id, session.max_age)

    def _set_cookie(
        self, request: web.Request, response: web.StreamResponse, sid: str, max_age: int | None
    ) -> None:
        params = self.cookie_params
        response.set_cookie(
            self.cookie_name,
            sid,
            max_age=self.max_age if max_age is None else max_age,
            path=params["path"],
            domain=params["domain"],
            secure=self._secure(request),
            httponly=params["httponly"],
            samesite=params["samesite"],
        )

    def _secure(self, request: web.Request) -> bool:
        secure = self.cookie_params["secure"]
        return bool(request.secure if secure is None else secure)

    def _expire_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        # The same attributes as when set: browsers ignore a __Host- or
        # SameSite=None deletion without Secure.
        params = self.cookie_params
        response.del_cookie(
            self.cookie_name,
            path=params["path"],
            domain=params["domain"],
            secure=self._secure(request),
            httponly=params["httponly"],
            samesite=params["samesite"],
        )
