"""aiohttp integration: one ``setup`` call, ``get_session`` / ``new_session`` in handlers.

::

    from cyclicsess.aiohttp import setup, get_session

    setup(app, SessionStore("sessions"), cookie=CookieSettings(name="__Host-session"))

    async def handler(request):
        session = await get_session(request)      # read on first use only
        session["visits"] = session.get("visits", 0) + 1
        return web.Response(text=str(session["visits"]))

A request that never asks for its session costs nothing. A session is written
only when its encoded bytes changed; otherwise it is touched, as the store's
``touch_interval`` allows. A visitor who stores nothing gets no cookie and
causes no write. The session is saved before the response's headers are
sent, for plain and streamed responses, ``HTTPException`` and WebSocket
handshakes alike; not when the handler raises any other exception.

Concurrent requests of one session cannot overwrite each other: a save that
meets a newer version reloads it and reapplies this request's changes to the
keys the other request did not touch; if both changed the same key, the
response is replaced by ``409 Conflict`` and nothing of this request is saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from ._item import SessionRecord
from .errors import (
    ConfigurationError,
    CyclicSessError,
    DynamoDBError,
    SessionConflict,
    SessionNotFound,
    StoreUnavailable,
)
from .ids import CookieSigner, is_well_formed
from .store import SessionStore

__all__ = ["STORE_KEY", "CookieSettings", "Session", "get_session", "new_session", "setup"]

log = logging.getLogger("cyclicsess.aiohttp")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class CookieSettings:
    """How the session cookie is set.

    Attributes:
        name: the cookie's name; ``__Host-`` names get ``Secure``, ``Path=/``
            and no ``Domain``, as browsers require.
        path: the cookie's path.
        domain: the cookie's domain, or None for the request's host only.
        persistent: send ``Max-Age`` equal to the store's ``ttl`` (renewed with
            each write or touch); False makes a browser-session cookie.
        secure: ``Secure`` always (True), never (False), or when the request is
            HTTPS (None; behind a proxy, see ``trust_forwarded`` in :func:`setup`).
        samesite: ``Lax``, ``Strict`` or ``None``.
        httponly: hide the cookie from JavaScript.
    """

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    persistent: bool = True
    secure: bool | None = None
    samesite: Literal["Lax", "Strict", "None"] = "Lax"
    httponly: bool = True

    def __post_init__(self) -> None:
        if self.name.startswith("__Host-") and (
            self.secure is False or self.path != "/" or self.domain is not None
        ):
            raise ConfigurationError("a __Host- cookie needs secure, path='/' and no domain")
        needs_secure = self.name.startswith(("__Host-", "__Secure-")) or self.samesite == "None"
        if needs_secure and self.secure is False:
            raise ConfigurationError("__Host-, __Secure- and SameSite=None cookies must be Secure")
        if needs_secure:
            object.__setattr__(self, "secure", True)


class Session(MutableMapping[str, Any]):
    """The session of one request: a dict of your data plus what the store knows.

    Changes are saved when the response is prepared; nothing is written for an
    unchanged or empty new session.
    """

    def __init__(self, record: SessionRecord | None, baseline: bytes | None) -> None:
        self._data: dict[str, Any] = dict(record.data) if record else {}
        self._record = record
        self._baseline = baseline
        self._invalidated: str | None = None  # the id to destroy at save time
        self._cookie_outdated = False

    @property
    def id(self) -> str | None:
        """The session id (the cookie's content); None until a new session is saved."""
        return self._record.id if self._record else None

    @property
    def new(self) -> bool:
        """Whether the session is not stored yet."""
        return self._record is None

    @property
    def version(self) -> int | None:
        """The stored version this request read (None for a new session)."""
        return self._record.version if self._record else None

    @property
    def expires_at(self) -> datetime | None:
        """When the stored session ends unless renewed (None for a new session)."""
        return self._record.expires_at if self._record else None

    def invalidate(self) -> None:
        """Log out: empty the session, delete its record and expire the cookie."""
        if self._record is not None:
            self._invalidated = self._record.id
        self._record = None
        self._baseline = None
        self._data.clear()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<Session new={self.new} version={self.version} keys={sorted(self._data)}>"


def _merge(
    base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any] | None:
    """Reapply the keys this request changed onto a newer version; None if both changed one."""
    merged = dict(theirs)
    missing = object()
    for key in base.keys() | mine.keys():
        before, after = base.get(key, missing), mine.get(key, missing)
        if before == after:
            continue
        # Equal values written by two requests are still two changes (two counter
        # increments from 1 both write 2): only an untouched key can be merged.
        if theirs.get(key, missing) != before:
            return None
        if after is missing:
            merged.pop(key, None)
        else:
            merged[key] = after
    return merged


@dataclass(frozen=True)
class _Config:
    store: SessionStore
    cookie: CookieSettings
    signer: CookieSigner | None
    trust_forwarded: bool
    on_store_error: Literal["fail", "warn"]
    merge_attempts: int


#: The app's store, for handlers that need it directly: ``request.app[STORE_KEY]``.
STORE_KEY = web.AppKey("cyclicsess.store", SessionStore)


class _Unmergeable(Exception):
    """A concurrent request changed what this one changed: nothing is saved."""


# Failures of DynamoDB itself, answered per `on_store_error`; our callers' bugs
# (EncodeError, SessionTooLarge, ConfigurationError) propagate as they are.
_UNAVAILABLE = (StoreUnavailable, DynamoDBError)


class _RequestSession:
    """Loads a request's session on demand and saves it once, before the response."""

    def __init__(self, request: web.Request, config: _Config) -> None:
        self.request = request
        self.config = config
        self.session: Session | None = None
        self.had_cookie = False
        self.degraded = False
        self.committed = False
        self._loading = asyncio.Lock()

    def _cookie_sid(self) -> str | None:
        value = self.request.cookies.get(self.config.cookie.name)
        if value is None:
            return None
        self.had_cookie = True
        if self.config.signer is not None:
            return self.config.signer.unsign(value)
        return value if is_well_formed(value) else None

    def _failed(self, action: str, exc: Exception) -> None:
        log.warning("session %s failed: %s", action, exc)
        if self.config.on_store_error == "fail":
            raise web.HTTPServiceUnavailable(text="session store unavailable, try again") from exc

    async def load(self) -> Session:
        async with self._loading:  # two get_session() calls at once: one read, one Session
            if self.session is None:
                self.session = await self._load()
            return self.session

    async def _load(self) -> Session:
        store = self.config.store
        record = None
        sid = self._cookie_sid()
        if sid is not None:
            try:
                record = await store.get(sid)
            except _UNAVAILABLE as exc:
                self._failed("load", exc)
                self.degraded = True  # never save over a session we could not read
        baseline = store.codec.encode(record.data) if record else None
        return Session(record, baseline)

    async def regenerate(self) -> Session:
        session = await self.load()
        if self.committed:
            raise RuntimeError("new_session() after the response was prepared cannot set a cookie")
        if session._record is None:
            return session
        try:
            moved = await self.config.store._move(session._record.id)
        except SessionNotFound:
            # Ended meanwhile (a logout in another tab): carry nothing over.
            session._record = session._baseline = None
            session._data.clear()
            return session
        except _UNAVAILABLE as exc:
            self._failed("regenerate", exc)
            return session
        session._record = moved
        session._baseline = self.config.store.codec.encode(moved.data)
        session._cookie_outdated = True
        return session

    def _secure(self) -> bool:
        secure = self.config.cookie.secure
        if secure is None:
            return _is_https(self.request, self.config.trust_forwarded)
        return secure

    def _set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        cookie = self.config.cookie
        response.set_cookie(
            cookie.name,
            self.config.signer.sign(sid) if self.config.signer else sid,
            max_age=int(self.config.store.ttl_s) if cookie.persistent else None,
            path=cookie.path,
            domain=cookie.domain,
            secure=self._secure(),
            httponly=cookie.httponly,
            samesite=cookie.samesite,
        )

    def _expire_cookie(self, response: web.StreamResponse) -> None:
        # The same attributes as when set: browsers ignore a __Host- or
        # SameSite=None deletion without Secure.
        cookie = self.config.cookie
        response.del_cookie(
            cookie.name,
            path=cookie.path,
            domain=cookie.domain,
            secure=self._secure(),
            httponly=cookie.httponly,
            samesite=cookie.samesite,
        )

    async def commit(self, response: web.StreamResponse) -> None:
        """Save the session and set or expire the cookie on ``response``."""
        if self.committed:
            return
        self.committed = True
        session = self.session
        if session is None or self.degraded:
            return
        try:
            await self._save(session, response)
        except _UNAVAILABLE as exc:
            self._failed("save", exc)

    async def _save(self, session: Session, response: web.StreamResponse) -> None:
        store = self.config.store
        if session._invalidated is not None:
            await store.destroy(session._invalidated)
            session._invalidated = None
        record = session._record
        if record is None:
            if session._data:
                self._set_cookie(response, await store.create(session._data))
            elif self.had_cookie:
                self._expire_cookie(response)
            return
        blob = store.codec.encode(session._data)
        if blob != session._baseline:
            if not await self._write(session, record, blob):
                return  # ended meanwhile: the logout expired the cookie; keep any newer one
            self._set_cookie(response, record.id)
        elif await store.touch(record) or session._cookie_outdated:
            self._set_cookie(response, record.id)

    async def _write(self, session: Session, record: SessionRecord, blob: bytes) -> bool:
        """Save changed data with its version, merging after conflicts; False if gone."""
        store = self.config.store
        data, version = session._data, record.version
        for _ in range(self.config.merge_attempts):
            try:
                await store.set(record.id, data, version=version)
                return True
            except SessionNotFound:
                log.warning("session ended during the request; its changes were dropped")
                return False
            except SessionConflict:
                fresh = await store.get(record.id, consistent=True)
                if fresh is None:
                    return False
                base = store.codec.decode(session._baseline or b"")
                merged = _merge(base, session._data, fresh.data)
                if merged is None:
                    raise _Unmergeable(
                        "a key this request changed was changed concurrently"
                    ) from None
                data, version = merged, fresh.version
        raise _Unmergeable("the session kept changing under this request")


_STATE = web.RequestKey("cyclicsess.request_session", _RequestSession)


def _is_https(request: web.Request, trust_forwarded: bool) -> bool:
    if request.secure:
        return True
    if not trust_forwarded:
        return False
    forwarded = request.forwarded
    if forwarded and forwarded[0].get("proto", "").lower() == "https":
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"


def _state(request: web.Request) -> _RequestSession:
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
    return await _state(request).load()


async def new_session(request: web.Request) -> Session:
    """Move the request's session to a new id (call it at login); data carries over.

    The old record is deleted at once, so an id planted before login is worthless.
    """
    return await _state(request).regenerate()


def setup(
    app: web.Application,
    store: SessionStore,
    *,
    cookie: CookieSettings | None = None,
    signing_secret: str | bytes | None = None,
    trust_forwarded: bool = False,
    on_store_error: Literal["fail", "warn"] = "fail",
    merge_attempts: int = 10,
) -> None:
    """Install the session middleware on ``app``; the store closes with the app.

    Args:
        app: the application.
        store: where sessions live.
        cookie: cookie settings (default: ``session``, HttpOnly, SameSite=Lax,
            Secure on HTTPS, Max-Age = the store's ttl).
        signing_secret: if set (>= 16 bytes), cookies carry an HMAC of the id
            and forged ones are refused before any database read.
        trust_forwarded: believe ``Forwarded`` / ``X-Forwarded-Proto`` about
            HTTPS (only behind a proxy that sets them).
        on_store_error: ``"fail"`` answers 503 when DynamoDB fails during a
            request; ``"warn"`` logs it and serves the request without a saved
            session.
        merge_attempts: how often a conflicting save reloads and reapplies.
    """
    if merge_attempts < 1:
        raise ConfigurationError("merge_attempts must be at least 1")
    if on_store_error not in ("fail", "warn"):
        raise ConfigurationError(f"on_store_error must be 'fail' or 'warn', not {on_store_error!r}")
    config = _Config(
        store=store,
        cookie=cookie or CookieSettings(),
        signer=CookieSigner(signing_secret) if signing_secret is not None else None,
        trust_forwarded=trust_forwarded,
        on_store_error=on_store_error,
        merge_attempts=merge_attempts,
    )

    @web.middleware
    async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = request[_STATE] = _RequestSession(request, config)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if not exc.prepared:
                replacement = await _commit_or_answer(state, exc)
                if replacement is not None:
                    return replacement
            raise
        except BaseException:
            state.committed = True  # a failed handler saves nothing, not even via on_prepare
            raise
        if not response.prepared:
            replacement = await _commit_or_answer(state, response)
            if replacement is not None:
                return replacement
        return response

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        # Streamed responses and WebSocket handshakes are prepared inside the
        # handler: save before their headers leave.
        state = request.get(_STATE)
        if state is None or state.committed:
            return
        try:
            await state.commit(response)
        except (_Unmergeable, web.HTTPException, CyclicSessError) as exc:
            # The headers are being sent: an error now would corrupt the response.
            log.warning("session not saved for a streamed response: %s", exc)
            return
        # aiohttp turned cookies into headers just before this hook: add ours.
        morsel = response.cookies.get(config.cookie.name)
        if morsel is not None:
            response.headers.add("Set-Cookie", morsel.output(header="")[1:])

    async def close_store(_: web.Application) -> None:
        await store.close()

    app[STORE_KEY] = store
    app.middlewares.append(session_middleware)
    app.on_response_prepare.append(on_prepare)
    app.on_cleanup.append(close_store)


async def _commit_or_answer(
    state: _RequestSession, response: web.StreamResponse
) -> web.StreamResponse | None:
    """Commit; on a conflict or store failure, the response to send instead."""
    try:
        await state.commit(response)
    except _Unmergeable as exc:
        log.info("session save refused: %s", exc)
        replacement = web.Response(
            status=409, text="the session was changed by a concurrent request; retry"
        )
    except web.HTTPServiceUnavailable as exc:
        replacement = web.Response(status=exc.status, text=exc.text)
    else:
        return None
    session = state.session
    if session is not None and session._cookie_outdated and session._record is not None:
        # new_session() moved it before the save failed: the old id is gone, so
        # hand over the new one (with the data as moved; this request's changes lost)
        state._set_cookie(replacement, session._record.id)
    return replacement
