"""The session of one request, framework-free: load, regenerate, abandon, commit.

Every adapter (aiohttp, the aiohttp-session storage, ASGI) runs this one
lifecycle and only translates: it hands over the request's ``Cookie``
headers and whether it is HTTPS, calls :meth:`RequestSession.commit` before
its response's headers leave, and turns the :class:`Commit` into its
framework's ``Set-Cookie``, ``Vary`` and ``Cache-Control`` headers, or into
the 409 or 503 it asks for. What it decides, once for all of them:

- no read without a well-formed (and, with a signing secret, signed) cookie;
  two cookies of the session's name are no session;
- nothing written for a visitor who stores nothing; a save only when the
  encoded data changed, else a touch as the store's ``touch_interval`` allows;
- a session emptied by the handler (``clear()``) or invalidated is destroyed:
  record deleted, cookie expired; if the delete fails, the cookie is expired
  and the answer is 503 whatever ``on_store_error`` says;
- ``regenerate`` moves the session to a new id when the request commits,
  with the request's final data in one write; if that fails, nothing of the
  request is saved under the old id;
- versioned saves; a conflicting one is merged into the version the failed
  write met (keys the other request did not change) or refused (409);
- a handler that failed (``abandon``, or a 5xx answer) saves nothing;
- ``on_store_error``: ``"fail"`` answers 503, ``"warn"`` logs and serves the
  request without saving (never over a session it could not read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ._item import SessionRecord
from .cookies import CookieOp, CookieSettings, ResolvedCookie, cookie_values
from .errors import (
    ConfigurationError,
    DynamoDBError,
    SessionConflict,
    SessionMoveIncomplete,
    SessionNotFound,
    SessionUnavailable,
    StoreUnavailable,
)
from .ids import CookieSigner, is_well_formed
from .session import Commit, Session, merge
from .store import SessionStore

__all__ = ["RequestSession", "SessionConfig"]

log = logging.getLogger("cyclicsess.lifecycle")
_MISSING = object()

StoreErrorPolicy = Literal["fail", "warn"]
ConflictPolicy = Literal["merge", "refuse"]

# Failures of DynamoDB itself, answered per on_store_error; the callers' bugs
# (EncodeError, SessionTooLarge, ConfigurationError) propagate as they are.
_UNAVAILABLE = (StoreUnavailable, DynamoDBError)


@dataclass(frozen=True)
class SessionConfig:
    """What every request of one app shares.

    Build it with :meth:`of`, which checks the options.
    """

    store: SessionStore
    cookie: CookieSettings
    signer: CookieSigner | None
    trust_forwarded: bool
    on_store_error: StoreErrorPolicy
    merge_attempts: int
    on_conflict: ConflictPolicy

    @classmethod
    def of(
        cls,
        store: SessionStore,
        *,
        cookie: CookieSettings | None = None,
        signing_secret: str | bytes | None = None,
        trust_forwarded: bool = False,
        on_store_error: StoreErrorPolicy = "fail",
        merge_attempts: int = 3,
        on_conflict: ConflictPolicy = "merge",
    ) -> SessionConfig:
        """Check the options and make the configuration.

        Args:
            store: where sessions live.
            cookie: cookie settings (default: see :class:`CookieSettings`).
            signing_secret: if set (>= 16 bytes), cookies carry an HMAC of the
                id and forged ones are refused before any database read.
            trust_forwarded: believe ``Forwarded`` / ``X-Forwarded-Proto`` about
                HTTPS (only behind a proxy that sets them).
            on_store_error: ``"fail"`` answers 503 when DynamoDB fails during a
                request; ``"warn"`` logs it and serves the request unsaved.
            merge_attempts: how often a conflicting save is merged and retried.
            on_conflict: ``"merge"`` the keys the other request left alone, or
                ``"refuse"`` (409) at once.

        Raises:
            ConfigurationError: an option is wrong.
            TypeError: ``store`` is not a :class:`~cyclicsess.store.SessionStore`.
        """
        if not isinstance(store, SessionStore):
            raise TypeError(f"store must be a cyclicsess.SessionStore, not {type(store).__name__}")
        if on_store_error not in ("fail", "warn"):
            raise ConfigurationError(
                f"on_store_error must be 'fail' or 'warn', not {on_store_error!r}"
            )
        if on_conflict not in ("merge", "refuse"):
            raise ConfigurationError(
                f"on_conflict must be 'merge' or 'refuse', not {on_conflict!r}"
            )
        if not isinstance(merge_attempts, int) or merge_attempts < 1:
            raise ConfigurationError("merge_attempts must be an int of at least 1")
        return cls(
            store=store,
            cookie=cookie or CookieSettings(),
            signer=CookieSigner(signing_secret) if signing_secret is not None else None,
            trust_forwarded=trust_forwarded,
            on_store_error=on_store_error,
            merge_attempts=merge_attempts,
            on_conflict=on_conflict,
        )


class _Unmergeable(Exception):
    """A concurrent request changed what this one changed: nothing is saved."""


class RequestSession:
    """The session lifecycle of one request.

    Args:
        config: the app's :class:`SessionConfig`.
        cookie_headers: the request's ``Cookie`` header values.
        https: whether the request arrived over HTTPS (see :func:`~cyclicsess.cookies.is_https`).
        root_path: the path the app is mounted under (an ASGI ``root_path``).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        cookie_headers: Iterable[str],
        https: bool,
        root_path: str = "",
    ) -> None:
        self.config = config
        self.cookie: ResolvedCookie = config.cookie.resolve(https=https, root_path=root_path)
        values = cookie_values(cookie_headers, self.cookie.name)
        self.had_cookie = bool(values)
        self._sid = self._session_id(values)
        self._session: Session | None = None
        self._baseline: bytes | None = None
        self._loading = asyncio.Lock()
        self._degraded = False
        self._abandoned = False
        self._commit: Commit | None = None

    def _session_id(self, values: list[str]) -> str | None:
        if len(values) != 1:
            if values:
                log.info("two session cookies in one request (one tossed in?): no session")
            return None
        signer = self.config.signer
        if signer is not None:
            return signer.unsign(values[0])
        return values[0] if is_well_formed(values[0]) else None

    @property
    def session(self) -> Session | None:
        """The loaded session, or None if nothing asked for it."""
        return self._session

    @property
    def committed(self) -> bool:
        """Whether :meth:`commit` has run (the response's headers were decided)."""
        return self._commit is not None

    async def load(self) -> Session:
        """The request's session, read from the store on first use (one read at most).

        Raises:
            SessionUnavailable: the store failed and ``on_store_error`` is ``"fail"``.
        """
        async with self._loading:  # two loads at once: one read, one Session
            if self._session is None:
                self._session = await self._read()
            return self._session

    async def _read(self) -> Session:
        store = self.config.store
        record = None
        if self._sid is not None:
            try:
                record = await store.get(self._sid)
            except _UNAVAILABLE as exc:
                if self.config.on_store_error == "fail":
                    raise SessionUnavailable(
                        f"the session could not be read: {exc}", attempts=0
                    ) from exc
                log.warning("session not read, served without one: %s", exc)
                self._degraded = True  # never save over a session we could not read
        self._baseline = store.codec.encode(record.data) if record else None
        return Session(record)

    async def regenerate(self, *, drop: Iterable[str] = ()) -> Session:
        """Move the session to a new id when the request commits (call it at login).

        The data is kept, but for the keys in ``drop`` (a CSRF token must not
        survive login); the old id is dead once the request commits. If the
        move fails, nothing of this request is saved under the old id.

        Raises:
            SessionUnavailable: as :meth:`load`.
            RuntimeError: the response was already committed.
        """
        session = await self.load()
        if self.committed:
            raise RuntimeError("regenerate after the response was committed cannot set a cookie")
        for key in drop:
            session._data.pop(key, None)
        if session._record is not None:
            session._rotate = True
        return session

    def abandon(self) -> None:
        """The handler failed: write nothing, set no cookie."""
        self._abandoned = True

    async def commit(self, *, status: int | None = None) -> Commit:
        """Save, touch, create or destroy the session; say what the response must carry.

        Idempotent: a second call returns the first's result.

        Args:
            status: the response's status; a 5xx saves nothing (the handler failed).
        """
        if self._commit is None:
            self._commit = Commit("nothing")  # a failure below must not commit twice
            self._commit = await self._commit_now(status)
        return self._commit

    async def _commit_now(self, status: int | None) -> Commit:
        session = self._session
        if self._abandoned or session is None or (status is not None and status >= 500):
            return Commit("nothing")
        if self._degraded:
            return Commit("nothing", private=True)
        try:
            commit = await self._write(session)
        except _Unmergeable as exc:
            log.info("session save refused: %s", exc)
            return Commit(
                "conflict",
                status=409,
                reason="the session was changed by a concurrent request; retry",
                private=True,
            )
        except _UNAVAILABLE as exc:
            log.warning("session not saved: %s", exc)
            if self.config.on_store_error == "warn":
                return Commit("failed", private=True)
            return Commit(
                "failed", status=503, reason="session store unavailable, try again", private=True
            )
        if session.accessed and not commit.private:
            commit = replace(commit, private=True)
        return commit

    # -- the writes ------------------------------------------------------------

    def _set_cookie(self, sid: str) -> CookieOp:
        settings, cookie = self.config.cookie, self.cookie
        max_age = None
        if settings.persistent:
            max_age = int(
                settings.max_age.total_seconds() if settings.max_age else self.config.store.ttl_s
            )
        signer = self.config.signer
        return CookieOp(
            name=cookie.name,
            value=signer.sign(sid) if signer else sid,
            max_age=max_age,
            path=cookie.path,
            domain=settings.domain,
            secure=cookie.secure,
            httponly=settings.httponly,
            samesite=settings.samesite,
        )

    def _expire_cookie(self) -> CookieOp:
        return self._set_cookie("").expired()

    def _adopt(self, session: Session, record: SessionRecord) -> None:
        """The session as the write left it, for a handler that goes on after the commit."""
        session._record = record
        session._rotate = False
        session._data = dict(record.data)

    async def _write(self, session: Session) -> Commit:
        store = self.config.store
        record, data = session._record, session._data
        ended = session._ended or (record if record is not None and not data else None)
        if ended is not None:
            try:
                await store.destroy(ended.id)
            except _UNAVAILABLE as exc:
                # Never answer a logout as done while the session lives on.
                log.warning("logout failed, session still stored: %s", exc)
                return Commit(
                    "failed",
                    cookie=self._expire_cookie(),
                    status=503,
                    reason="logout failed, try again",
                    private=True,
                )
            session._record = record = None
            if not data:
                return Commit("destroyed", cookie=self._expire_cookie(), private=True)
        if record is None:
            if data:
                self._adopt(session, created := await store.create_record(data))
                return Commit("created", cookie=self._set_cookie(created.id), private=True)
            if self.had_cookie:  # a stale, unknown or forged cookie: let it go
                return Commit("nothing", cookie=self._expire_cookie(), private=True)
            return Commit("nothing")
        if session._rotate:
            return await self._move(session, record)
        if store.codec.encode(data) != self._baseline:
            saved = await self._save_merging(session, record)
            if saved is None:  # ended meanwhile: the logout expired the cookie
                return Commit("dropped", private=True)
            self._adopt(session, saved)
            return Commit("saved", cookie=self._set_cookie(saved.id), private=True)
        touched = await store.touch_record(record)
        if touched is None:
            return Commit("nothing")
        self._adopt(session, touched)
        return Commit("touched", cookie=self._set_cookie(touched.id))

    async def _move(self, session: Session, record: SessionRecord) -> Commit:
        """Regenerate with the request's final data; never save it under the old id."""
        store = self.config.store
        changed = store.codec.encode(session._data) != self._baseline
        try:  # unchanged data moves as it is (a large session's data item is kept)
            moved = await store.regenerate_record(
                record.id, data=session._data if changed else None
            )
        except SessionMoveIncomplete as exc:
            # The old id is dead; the new one holds the session if its write applied.
            log.warning("session moved, its new record unconfirmed: %s", exc)
            status = 503 if self.config.on_store_error == "fail" else None
            return Commit(
                "failed",
                cookie=self._set_cookie(exc.new_id),
                status=status,
                reason="session store unavailable, try again",
                private=True,
            )
        except SessionNotFound:
            # Ended meanwhile (a logout in another tab): what it held stays ended;
            # only what this request itself changed goes on, in a new session.
            changes = self._changes(session)
            if not changes:
                return Commit("dropped", cookie=self._expire_cookie(), private=True)
            moved = await store.create_record(changes)
        except _UNAVAILABLE as exc:
            if self.config.on_store_error == "fail":
                raise
            # warn: carry on in a new session rather than under the old, maybe planted, id
            log.warning("session not moved to a new id, a new session is made: %s", exc)
            moved = await store.create_record(session._data)
        self._adopt(session, moved)
        return Commit("created", cookie=self._set_cookie(moved.id), private=True)

    def _changes(self, session: Session) -> dict[str, Any]:
        """The keys this request assigned or changed since it read the session."""
        base = self.config.store.codec.decode(self._baseline or b"")
        return {
            key: value
            for key, value in session._data.items()
            if key in session._written or base.get(key, _MISSING) != value
        }

    async def _save_merging(self, session: Session, record: SessionRecord) -> SessionRecord | None:
        """Save with the version read, merging into newer versions; None if the session ended."""
        store = self.config.store
        base = store.codec.decode(self._baseline or b"")  # as read: nested values untouched
        mine, read = session._data, record
        data: Mapping[str, Any] = mine
        for _ in range(self.config.merge_attempts):
            try:
                return await store.save_record(read, data)
            except SessionNotFound:
                log.warning("session ended during the request; its changes were dropped")
                return None
            except SessionConflict as conflict:
                if self.config.on_conflict == "refuse":
                    raise _Unmergeable("the session was saved by a concurrent request") from None
                current = conflict.current or await store.get(record.id, consistent=True)
                if current is None:
                    return None
                merged = merge(base, mine, current.data)
                if merged is None:
                    raise _Unmergeable(
                        "a key this request changed was changed concurrently"
                    ) from None
                data, read = merged, current
        raise _Unmergeable("the session kept changing under this request")
