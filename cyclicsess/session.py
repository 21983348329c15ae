"""A request's session as handlers see it, and what committing it says.

:class:`Session` is the mapping a handler reads and changes (``request.session``
on ASGI, ``await get_session(request)`` on aiohttp); :class:`Commit` is what a
commit did and what the response must carry; :func:`merge` reapplies one
request's changes onto a version another request saved meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._item import SessionRecord
from .cookies import CookieOp

__all__ = ["Commit", "HeaderChanges", "Outcome", "Session", "merge"]

#: What a commit did.
Outcome = Literal[
    "nothing", "created", "saved", "touched", "destroyed", "dropped", "conflict", "failed"
]
_MISSING = object()


class Session(MutableMapping[str, Any]):
    """The session of one request: a dict of your data plus what the store knows.

    Changes are saved when the response is committed; nothing is written for
    an unchanged or empty new session. Emptying a stored session (``clear()``)
    or :meth:`invalidate` logs out.
    """

    def __init__(self, record: SessionRecord | None) -> None:
        self._data: dict[str, Any] = dict(record.data) if record else {}
        self._record = record
        self._ended: SessionRecord | None = None  # invalidated: deleted at commit
        self._rotate = False  # regenerate: moved to a new id at commit
        self._written: set[str] = set()  # keys the handler assigned, changed or not
        self.accessed = False

    @property
    def id(self) -> str | None:
        """The session id; None for a new session, and from ``regenerate`` until the commit."""
        return None if self._record is None or self._rotate else self._record.id

    @property
    def new(self) -> bool:
        """Whether the session is not stored yet."""
        return self._record is None

    @property
    def version(self) -> int | None:
        """The stored version (None for a new session)."""
        return self._record.version if self._record else None

    @property
    def created_at(self) -> datetime | None:
        """When the stored session was created (None for a new session)."""
        return self._record.created_at if self._record else None

    @property
    def expires_at(self) -> datetime | None:
        """When the stored session ends unless renewed; after the commit, as it left it."""
        return self._record.expires_at if self._record else None

    def invalidate(self) -> None:
        """Log out: empty the session, delete its record and expire the cookie.

        Data set afterwards is saved as a new session, under a new id.
        """
        if self._record is not None:
            self._ended = self._record
        self._record = None
        self._rotate = False
        self._data.clear()

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.accessed = True
        self._written.add(key)
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        self.accessed = True
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(self._data)

    def __len__(self) -> int:
        self.accessed = True
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return key in self._data

    def __repr__(self) -> str:
        return f"<Session new={self.new} version={self.version} keys={sorted(self._data)}>"


@dataclass(frozen=True)
class HeaderChanges:
    """The response headers a commit asks for: set these, replacing any of the same name.

    Attributes:
        set_cookie: a ``Set-Cookie`` value to add (never replacing the app's own).
        vary: the ``Vary`` value to set (the app's, with ``Cookie`` added).
        cache_control: the ``Cache-Control`` value to set, or None to leave the app's.
    """

    set_cookie: str | None
    vary: str | None
    cache_control: str | None


@dataclass(frozen=True)
class Commit:
    """What committing a request's session did, and what the response must carry.

    Attributes:
        outcome: what happened to the session.
        cookie: the cookie to set or expire, or None.
        status: 409 or 503 when the response must be replaced by that answer.
        reason: the text for that answer.
        private: the response depends on the session cookie: ``Vary: Cookie``
            and (unless the app set one) ``Cache-Control: private``.
    """

    outcome: Outcome
    cookie: CookieOp | None = None
    status: int | None = None
    reason: str = ""
    private: bool = False

    def headers(self, *, vary: str | None, cache_control: str | None) -> HeaderChanges:
        """The header changes for a response whose ``Vary``/``Cache-Control`` are these."""
        set_cookie = self.cookie.header() if self.cookie is not None else None
        if not (self.private or set_cookie):
            return HeaderChanges(set_cookie, None, None)
        varies = [v.strip() for v in (vary or "").split(",") if v.strip()]
        if not any(v.lower() in ("cookie", "*") for v in varies):
            varies.append("Cookie")
        return HeaderChanges(
            set_cookie, ", ".join(varies), "private" if cache_control is None else None
        )


def merge(
    base: Mapping[str, Any], mine: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Reapply the keys this request changed onto a newer version; None if both changed one."""
    merged = dict(theirs)
    for key in base.keys() | mine.keys():
        before, after = base.get(key, _MISSING), mine.get(key, _MISSING)
        if before == after:
            continue
        # Equal values written by two requests are still two changes (two counter
        # increments from 1 both write 2): only an untouched key can be merged.
        if theirs.get(key, _MISSING) != before:
            return None
        if after is _MISSING:
            merged.pop(key, None)
        else:
            merged[key] = after
    return merged
