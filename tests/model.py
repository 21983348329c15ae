"""An in-memory model of the store's semantics (DESIGN.md, "Semantics").

The model-based test (tests/integration/test_model.py) runs the same random
operations on it and on a real store and compares every answer. It keeps, for
every session id ever handed out, what the table should hold, and mirrors the
store's arithmetic exactly:

- times are epoch seconds (floats) from the test's clock;
- ``expires = int(now + ttl)`` and ``created = int(now)`` are whole seconds,
  ``touched = int(now * 1000)`` is in milliseconds;
- a session is live at ``now`` iff its item exists and
  ``min(expires, created + absolute_lifetime) > now`` (for whole-second
  ``expires`` and ``created`` this is the same as the writes' condition
  ``expires > int(now) AND created > int(now - absolute_lifetime)``);
- a touch writes iff ``now - touched / 1000 >= touch_interval`` (always when
  the interval is 0), and only to a live session;
- writes never recreate a missing item.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Item:
    """What the table holds (or held) for one session id."""

    data: dict[str, Any]
    version: int
    expires: int  # epoch seconds
    touched_ms: int  # epoch milliseconds
    created: int  # epoch seconds
    stored: bool = True  # False once destroyed or deleted as expired


@dataclass(frozen=True)
class SetOk:
    version: int


@dataclass(frozen=True)
class SetNotFound:
    pass


@dataclass(frozen=True)
class SetConflict:
    expected: int
    current: int


SetOutcome = SetOk | SetNotFound | SetConflict


class StoreModel:
    """The session table as the semantics say it should evolve."""

    def __init__(
        self,
        *,
        ttl_s: float,
        touch_interval_s: float,
        absolute_lifetime_s: float | None,
        keep_expired: bool,
    ) -> None:
        self.ttl_s = ttl_s
        self.touch_interval_s = touch_interval_s
        self.absolute_lifetime_s = absolute_lifetime_s
        self.keep_expired = keep_expired
        self.items: dict[str, Item] = {}

    # -- queries ---------------------------------------------------------------

    def expiry(self, item: Item) -> float:
        """When the session ends: idle expiry, capped by the absolute lifetime."""
        if self.absolute_lifetime_s is None:
            return item.expires
        return min(item.expires, item.created + self.absolute_lifetime_s)

    def stored(self, sid: str) -> Item | None:
        """The item the table holds for ``sid``, live or expired."""
        item = self.items.get(sid)
        return item if item is not None and item.stored else None

    def live(self, sid: str, now: float) -> Item | None:
        """The item of a live session, or None."""
        item = self.stored(sid)
        return item if item is not None and self.expiry(item) > now else None

    # -- operations --------------------------------------------------------------

    def forget(self, sid: str) -> None:
        """Register a well-formed id that was never issued."""
        self.items[sid] = Item({}, 0, 0, 0, 0, stored=False)

    def create(self, sid: str, data: dict[str, Any], now: float) -> None:
        assert sid not in self.items, "a fresh id must be new"
        self.items[sid] = self._fresh(copy.deepcopy(data), now, created=int(now))

    def _fresh(self, data: dict[str, Any], now: float, *, created: int) -> Item:
        return Item(
            data=data,
            version=1,
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=created,
        )

    def get(self, sid: str, now: float) -> Item | None:
        """A snapshot of the live session; an expired item is deleted unless kept."""
        item = self.stored(sid)
        if item is None:
            return None
        if self.expiry(item) <= now:
            if not self.keep_expired:
                item.stored = False
            return None
        return dataclasses.replace(item, data=copy.deepcopy(item.data))

    def set(self, sid: str, data: dict[str, Any], version: int | None, now: float) -> SetOutcome:
        item = self.live(sid, now)
        if item is None:
            return SetNotFound()  # never recreated, an expired item is left as it is
        if version is not None and version != item.version:
            return SetConflict(expected=version, current=item.version)
        item.data = copy.deepcopy(data)
        item.version += 1
        item.expires = int(now + self.ttl_s)
        item.touched_ms = int(now * 1000)
        return SetOk(item.version)

    def touch(self, sid: str, now: float, *, read_touched_ms: int | None = None) -> bool:
        """Renew a live session unless throttled.

        ``read_touched_ms`` is the ``touched`` of a record read earlier (touch by
        record); without it the throttle looks at the stored item (touch by id).
        """
        if self.touch_interval_s > 0:
            if read_touched_ms is None:
                stored = self.stored(sid)
                if stored is None:
                    return False
                read_touched_ms = stored.touched_ms
            if now - read_touched_ms / 1000 < self.touch_interval_s:
                return False
        item = self.live(sid, now)
        if item is None:
            return False
        item.expires = int(now + self.ttl_s)
        item.touched_ms = int(now * 1000)
        return True

    def destroy(self, sid: str) -> None:
        item = self.items.get(sid)
        if item is not None:
            item.stored = False

    def regenerate(self, sid: str, new_sid: str, now: float) -> None:
        """Move a live session to ``new_sid`` (the caller checked it is live)."""
        item = self.live(sid, now)
        assert item is not None
        assert new_sid not in self.items, "a fresh id must be new"
        self.items[new_sid] = self._fresh(copy.deepcopy(item.data), now, created=item.created)
        item.expires = int(now)  # ended, and left for a read or TTL to delete
