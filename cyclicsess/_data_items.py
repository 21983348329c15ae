"""Where a session's data goes: in its head item, or (when large) in an item of its own.

DynamoDB bills a write on the whole item, so a touch of a head that held 20
KB of data would cost 20 write units to move one timestamp. A session whose
head would pass one write unit (:data:`~cyclicsess._item.HEAD_LIMIT`) may keep
its data in a data item instead, written once per change of the data, and
the head refers to it: every touch then costs one unit, whatever the size.
Whether it does is decided at each write of the data, by what it would save:
see :meth:`DataItems._in_head` (the head counts its touches since the last
write, for that).

A data item's key is the session's storage key, ``#`` and a random token, so
each change of the data writes a new one and the head swaps its reference in
the same conditional write that checks the version: a lost or failed write
never leaves a head pointing at half-written data, and the data a head
refers to never changes (so it is read eventually consistently, and strongly
only if that finds nothing). Replaced data items are not deleted (that would
cost their size again): they expire through DynamoDB's TTL, which is free,
after :meth:`DataItems._data_lifetime_s`. A session that lives longer than
its data item renews the item's expiry when a touch finds it due (rare: once
per four ttls of activity without a change of data). Data is compressed
(zlib) when that makes it at least 10% smaller; items written before keep
reading as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._capacity import write_units
from ._compress import compressed, worth_compressing
from ._item import HEAD_LIMIT, ITEM_SIZE_LIMIT, MOVED_TO, WRITE_ID_LENGTH, SessionRecord, StoredItem
from ._store_base import StoreBase, new_write_id
from .errors import CyclicSessError, SessionTooLarge

__all__ = ["DataItems", "Placed"]

log = logging.getLogger("cyclicsess")

#: The shortest a data item lives: a day (or four ttls, if longer).
_MIN_DATA_LIFETIME_S = 86_400
_DATA_LIFETIMES_PER_TTL = 4
#: Compress when that saves at least this share of the bytes.
_COMPRESSION_GAIN = 0.1
#: Touches expected per write of the data of a session with no history yet.
_PRIOR_TOUCHES_PER_WRITE = 1


@dataclass(frozen=True)
class Placed:
    """A session's encoded data, and where it went."""

    blob: bytes  # as stored: compressed or not
    data_ref: str | None = None  # the data item's key; None: in the head
    data_expires: int | None = None  # when that data item expires (epoch seconds)


class DataItems(StoreBase):
    """The store's handling of data kept in the head or in data items."""

    def _data_lifetime_s(self) -> float:
        """How long a data item lives after it is written (or renewed)."""
        return max(_MIN_DATA_LIFETIME_S, _DATA_LIFETIMES_PER_TTL * self.ttl_s)

    def _encode(self, data: Mapping[str, Any], storage_key: str) -> bytes:
        """The data as stored (compressed when worth it), checked to fit an item.

        Raises:
            EncodeError: a value cannot be stored.
            SessionTooLarge: the data fits neither the head nor a data item of its own.
        """
        blob = self._stored_bytes(data)
        size = self.layout.item_size(storage_key, blob)
        if self.separate_large_data:
            size = min(size, self.layout.data_item_size(self._data_key_like(storage_key), blob))
        if size > ITEM_SIZE_LIMIT:
            raise SessionTooLarge(
                f"session item would be {size} bytes; DynamoDB allows {ITEM_SIZE_LIMIT}",
                size_bytes=size,
                limit_bytes=ITEM_SIZE_LIMIT,
            )
        return blob

    def _stored_bytes(self, data: Mapping[str, Any]) -> bytes:
        """The data encoded, and compressed when that makes it 10% smaller (binary codecs)."""
        blob = self.codec.encode(data)
        if self.codec.attribute_type == "B" and worth_compressing(blob):
            packed = compressed(blob)
            if len(packed) <= len(blob) * (1 - _COMPRESSION_GAIN):
                return packed
        return blob

    def _in_head(self, storage_key: str, blob: bytes, touches: int | None) -> bool:
        """Whether ``blob`` stays in the head rather than going to a data item.

        With the data in it, a head of ``k`` write units costs ``k`` per write
        and per touch; kept apart, a write costs one unit more (the head as
        well as the data item) and a touch one unit. So the data stays in the
        head if it fits one unit, or if the touches expected before its next
        write, ``t``, do not pay for it: ``t * (k - 1) <= 1``. The touches since
        the last write (``touches``) predict them; a new session assumes one.
        """
        size = self.layout.item_size(storage_key, blob)
        if size > ITEM_SIZE_LIMIT:
            return False
        if not self.separate_large_data or size <= HEAD_LIMIT:
            return True
        expected = _PRIOR_TOUCHES_PER_WRITE if touches is None else touches
        return expected * (write_units(size) - 1) <= 1

    def _data_key_like(self, storage_key: str) -> str:
        return self.layout.data_key(storage_key, "x" * WRITE_ID_LENGTH)

    async def _place(
        self, storage_key: str, blob: bytes, now: float, touches: int | None = None
    ) -> Placed:
        """Keep ``blob`` in the head, or write it to a new data item first (:meth:`_in_head`)."""
        if self._in_head(storage_key, blob, touches):
            return Placed(blob)
        data_key, expires = await self._put_data_item(storage_key, blob, now)
        return Placed(blob, data_key, expires)

    async def _put_data_item(self, storage_key: str, blob: bytes, now: float) -> tuple[str, int]:
        """Write ``blob`` to a new data item of the session; its key and expiry."""
        data_key = self.layout.data_key(storage_key, new_write_id())
        expires = int(now + self._data_lifetime_s())
        await self._call("PutItem", self.requests.put_data(data_key, blob, expires=expires))
        return data_key, expires

    async def _data_of(self, storage_key: str, stored: StoredItem) -> bytes | None:
        """The blob of a head (read from its data item if need be); None if that is gone."""
        if stored.data_ref is None:
            return stored.blob
        item = None
        for consistent in (False, True):  # never changes: a replica's copy is as good
            answer = await self._call(
                "GetItem", self.requests.read(stored.data_ref, consistent=consistent)
            )
            item = answer.get("Item")
            if item:
                break
        if not item:
            log.warning("session %s: its data item is gone", self._log_id(storage_key))
            return None
        return self.layout.parse_data(item)

    async def _full_record(
        self, sid: str, storage_key: str, stored: StoredItem
    ) -> SessionRecord | None:
        """The record of a head with its data (read from its data item if need be)."""
        blob = await self._data_of(storage_key, stored)
        return None if blob is None else self._record(sid, storage_key, replace(stored, blob=blob))

    async def _drop_data(self, storage_key: str, deleted: Mapping[str, Any] | None) -> None:
        """Delete the data item of a deleted head, unless a move handed it on."""
        stored = self._parsed(storage_key, dict(deleted)) if deleted else None
        if stored is None or stored.data_ref is None or deleted is None or MOVED_TO in deleted:
            return
        try:
            await self._call("DeleteItem", self.requests.delete(stored.data_ref))
        except CyclicSessError as exc:  # it expires by itself; deleting it only tidies up
            log.warning("session %s: data item left to expire: %s", self._log_id(storage_key), exc)
