"""Touches: renewing a session's lifetime without writing its data.

A touch is one conditional UpdateItem of the head (one write unit when the
data lives apart), throttled by ``touch_interval`` and counted in the head.
Two cases write more, each rarely: a touch that finds the session's data item
due for renewal renews it first, and a touch of a head whose inline data has
become costlier to touch than to keep apart moves the data to a data item
(:meth:`Touching._move_out`): one write, after which touches cost one unit.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ._data_items import DataItems
from ._item import SessionRecord, StoredItem
from .errors import ConditionalCheckFailed
from .ids import is_well_formed

__all__ = ["Touching"]

log = logging.getLogger("cyclicsess")


class Touching(DataItems):
    """The touch operations of :class:`~cyclicsess.store.SessionStore`."""

    async def touch(self, session: str | SessionRecord) -> bool:
        """Renew a live session's lifetime without changing its data.

        Skipped (no write) when the last write or touch is younger than
        ``touch_interval``. Pass the record from :meth:`get` to decide that
        without a read (the throttle then counts from the record's
        ``touched_at``); with an id, the store reads the item first (unless
        ``touch_interval`` is 0).

        Returns:
            Whether a write renewed the session. False when throttled or when
            the session is unknown, destroyed or expired (never recreated).
        """
        if isinstance(session, SessionRecord):
            return await self.touch_record(session) is not None
        if not is_well_formed(session):
            return False
        now = self._clock()
        if self.touch_interval_s > 0:
            stored = await self._read(self.storage_key(session), consistent=self.consistent_read)
            if stored is None or now - stored.touched_ms / 1000 < self.touch_interval_s:
                return False
        return await self._touch(session, now)

    async def touch_record(self, record: SessionRecord) -> SessionRecord | None:
        """Touch as :meth:`touch` does with a record; return the renewed record, or None.

        None when throttled (no write) or when the session has ended.
        """
        now = self._clock()
        if now - record.touched_at.timestamp() < self.touch_interval_s:
            return None
        moved = await self._move_out(record, now)
        if not moved and not await self._touch(record.id, now):
            return None
        stored = StoredItem(
            blob=b"",
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=int(record.created_at.timestamp()),
            version=record.version,
            touches=0 if moved else record.touches_since_save + 1,
        )
        renewed = stored.record(
            record.id, record.data, self.absolute_lifetime_s, self.storage_key(record.id)
        )
        return replace(renewed, stored_apart=record.stored_apart or moved)

    async def _touch(self, sid: str, now: float) -> bool:
        storage_key = self.storage_key(sid)
        payload = self.requests.touch(storage_key, now=now, ttl_s=self.ttl_s, margin_s=self.ttl_s)
        try:
            await self._call("UpdateItem", payload)
        except ConditionalCheckFailed as failure:
            return await self._touch_renewing_data(storage_key, failure, now)
        return True

    async def _touch_renewing_data(
        self, storage_key: str, failure: ConditionalCheckFailed, now: float
    ) -> bool:
        """After a refused touch: renew a live session whose data item was due; else False."""
        stored = self._parsed(storage_key, await self._item_after(storage_key, failure))
        if stored is None or stored.data_ref is None:
            return False
        if stored.expiry(self.absolute_lifetime_s) <= now:
            return False
        expires = int(now + self._data_lifetime_s())
        renew = self.requests.renew_data(stored.data_ref, expires=expires)
        head = self.requests.touch_renewed(
            storage_key, now=now, ttl_s=self.ttl_s, data_ref=stored.data_ref, data_expires=expires
        )
        try:
            await self._call("UpdateItem", renew)
            await self._call("UpdateItem", head)
        except ConditionalCheckFailed:
            return False  # the data item is gone, or the head changed meanwhile
        return True

    async def _move_out(self, record: SessionRecord, now: float) -> bool:
        """Move a record's inline data to a data item if touches now cost more; whether it did.

        The move is a write of the same data at the same version (nothing a
        concurrent save could lose: one that read this version still applies
        over it); it renews the session as a touch does. A refused move (the
        session changed or ended meanwhile) leaves the touch to decide.
        """
        if record.stored_apart or not self.separate_large_data:
            return False
        storage_key = self.storage_key(record.id)
        blob = self._stored_bytes(record.data)
        if self._in_head(storage_key, blob, record.touches_since_save + 1):
            return False
        data_key, expires = await self._put_data_item(storage_key, blob, now)
        payload = self.requests.move_out(
            storage_key,
            now=now,
            ttl_s=self.ttl_s,
            version=record.version,
            data_ref=data_key,
            data_expires=expires,
        )
        try:
            await self._call("UpdateItem", payload)
        except ConditionalCheckFailed:
            log.debug("session %s changed before its data moved out", self._log_id(storage_key))
            return False
        return True
