"""Sessions of a user: the store's queries and revocations over the user index.

With ``user_key`` set, every data write stores a keyed hash of
``str(data[user_key])`` in the item's ``uid`` attribute; a global secondary
index on it (keys only) finds a user's sessions. Only a data write changes
that attribute: a touch rewrites ``expires`` and ``touched``, which a
keys-only index does not hold, so it costs the index nothing (DynamoDB writes
a global secondary index only when an item's indexed attributes change:
"Managing Global Secondary Indexes", Amazon DynamoDB Developer Guide).

A global secondary index is eventually consistent: a session created or
logged into a moment ago may be missing from :meth:`UserSessions.sessions_of`
and escape :meth:`UserSessions.revoke_user` (run it again); the items it does
list are read with strongly consistent reads, so every one it returns is
live and still that user's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from ._bulk import batch_get, pages
from ._item import SessionRecord, StoredItem
from ._touches import Touching
from .errors import ConditionalCheckFailed, ConfigurationError, DecodeError
from .ids import is_well_formed

__all__ = ["UserSessions"]

#: Conditional deletes of one revocation in flight at once.
_REVOKE_CONCURRENCY = 16


class UserSessions(Touching):
    """The user-index operations of :class:`~cyclicsess.store.SessionStore`."""

    def _user_index_key(self, user: object) -> str:
        if self.user_key is None:
            raise ConfigurationError(
                "sessions are not indexed by user: make the store with user_key='user' (say)"
            )
        return self._hasher.user_key(str(user))

    async def _keys_of(self, user_key: str) -> list[dict[str, Any]]:
        key_names = [self.layout.hash_key] + (
            [self.layout.range_key] if self.layout.range_key else []
        )
        client = self._client or await self._open_client()
        return [
            {name: item[name] for name in key_names}
            async for item in pages(client, "Query", self.requests.sessions_of(user_key))
        ]

    async def sessions_of(self, user: object) -> list[SessionRecord]:
        """The live sessions of ``user`` (``data[user_key] == user``), newest first.

        The records' ``id`` is empty (ids are never stored); ``storage_key``
        names each, and :meth:`destroy` takes the record. The index is
        eventually consistent: a session created a moment ago may be missing.

        Raises:
            ConfigurationError: the store has no ``user_key``.
        """
        user_key = self._user_index_key(user)
        keys = await self._keys_of(user_key)
        client = self._client or await self._open_client()
        items = await batch_get(client, self.layout.table, keys, consistent=True)
        now = self._clock()
        heads = []
        for item in items:
            storage_key = str(item[self.layout.hash_key]["S"])
            stored = self._parsed(storage_key, item)
            if stored is None or stored.user != user_key:
                continue  # unreadable, or another user's by now
            if stored.expiry(self.absolute_lifetime_s) > now:
                heads.append((storage_key, stored))
        blobs = await self._data_items_of([stored for _, stored in heads])
        records = []
        for storage_key, stored in heads:
            blob = stored.blob if stored.data_ref is None else blobs.get(stored.data_ref)
            record = (
                None if blob is None else self._record("", storage_key, replace(stored, blob=blob))
            )
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    async def _data_items_of(self, heads: list[StoredItem]) -> dict[str, bytes]:
        """The blobs of the data items these heads refer to, by data item key."""
        refs = [stored.data_ref for stored in heads if stored.data_ref is not None]
        if not refs:
            return {}
        client = self._client or await self._open_client()
        keys = [self.layout.key(ref) for ref in refs]
        blobs = {}
        for item in await batch_get(client, self.layout.table, keys, consistent=True):
            try:
                blobs[str(item[self.layout.hash_key]["S"])] = self.layout.parse_data(item)
            except DecodeError:
                continue  # an unreadable data item: that session is not listed
        return blobs

    async def revoke_user(self, user: object, *, keep: str | None = None) -> int:
        """End every session of ``user`` but ``keep``'s; return how many ended.

        "Log out everywhere (else)": each delete applies only while the session
        still belongs to ``user``. The index is eventually consistent: a session
        created a moment ago may escape; run it again.

        Args:
            user: the value of ``data[user_key]`` whose sessions end.
            keep: a session id to leave alone (the current one).

        Raises:
            ConfigurationError: the store has no ``user_key``.
        """
        user_key = self._user_index_key(user)
        kept = self.storage_key(keep) if keep is not None and is_well_formed(keep) else None
        client = self._client or await self._open_client()
        slots = asyncio.Semaphore(_REVOKE_CONCURRENCY)

        async def end(key: dict[str, Any]) -> bool:
            storage_key = str(key[self.layout.hash_key]["S"])
            async with slots:
                try:
                    answer = await client.call(
                        "DeleteItem", self.requests.delete_of_user(storage_key, user_key)
                    )
                except ConditionalCheckFailed:
                    return False  # gone, or another user's by now
                await self._drop_data(storage_key, answer.get("Attributes"))
                return True

        keys = [
            key for key in await self._keys_of(user_key) if key[self.layout.hash_key]["S"] != kept
        ]
        return sum(await asyncio.gather(*(end(key) for key in keys)))
