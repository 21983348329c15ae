"""SessionStore: the session policy (lifetimes, touch throttle, expiry, versions).

It turns each operation into one or two DynamoDB requests through the
transport and never builds HTTP itself. Every write is conditional: a touch or
a save never brings back a session that was destroyed or has expired.

Each operation comes in two forms: by id (``create``, ``set``, ``touch``,
``regenerate``), and by record (``create_record``, ``save_record``,
``touch_record``, ``regenerate_record``), which return the
:class:`SessionRecord` as stored, for frameworks that keep the session of a
request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from . import table as _table
from ._data_items import Placed
from ._item import MOVED_TO, StoredItem
from ._item import SessionRecord as SessionRecord
from ._store_base import Clock, duration_seconds, new_write_id
from ._users import UserSessions
from .errors import (
    ConditionalCheckFailed,
    CyclicSessError,
    DecodeError,
    DynamoDBError,
    SessionConflict,
    SessionMoveIncomplete,
    SessionNotFound,
    StoreUnavailable,
)
from .ids import is_well_formed, new_session_id

__all__ = ["Clock", "SessionStore"]

log = logging.getLogger("cyclicsess")


class SessionStore(UserSessions):
    """Sessions in one DynamoDB table.

    Use it as ``async with SessionStore("sessions") as store:``; it also opens
    itself on first use and closes with :meth:`close`.

    Args:
        table: the table name.
        region: AWS region; default from the environment or profile.
        endpoint_url: e.g. ``http://127.0.0.1:8000``; default from botocore
            (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL``, the profile).
        profile: an AWS config profile name.
        ttl: idle lifetime: a session ends this long after its last write or touch.
        touch_interval: a touch within this time of the last write is skipped
            (no write); ``timedelta(0)`` touches every time. Default: ``ttl / 20``
            (72 minutes for a day; 30 s for 10 minutes). A session may so end up
            to ``touch_interval`` (+1 s: ``expires`` is in whole seconds) before
            ``ttl`` after its last request, never later.
        absolute_lifetime: if set, a session ends this long after creation,
            however active it is.
        keep_expired: leave expired items for DynamoDB's TTL instead of
            deleting them when read.
        secret: server secret (>= 16 bytes) keying the hash of stored ids;
            without one, ids are stored as plain SHA-256.
        key_prefix: prepended to every storage key (for shared tables).
        hash_key: the table's partition key attribute.
        range_key: the sort key attribute of a single-table design, if any.
        codec: :class:`~cyclicsess.codec.MsgpackCodec` (default) or ``JsonCodec``.
        consistent_read: strongly consistent reads (default) or eventual ones
            (half the read cost, may miss a write made a moment ago).
        retry: time budget and backoff of each DynamoDB call.
        clock: returns epoch seconds; tests and simulations move it.
        max_connections: size of the connection pool.
        client: a ready transport (then region, endpoint, profile, retry and
            max_connections are ignored).
        user_key: index sessions by ``data[user_key]`` (``"user"``, say): every
            data write stores a keyed hash of ``str(data[user_key])``, and
            :meth:`sessions_of` and :meth:`revoke_user` find a user's sessions
            through a keys-only global secondary index that :meth:`ensure_table`
            creates.
    """

    # -- reading ---------------------------------------------------------------

    async def get(self, sid: str, *, consistent: bool | None = None) -> SessionRecord | None:
        """The live session with this id, or None.

        None for an unknown, malformed, expired or unreadable session; an
        expired item is deleted (conditionally) unless ``keep_expired``.

        Args:
            sid: the session id.
            consistent: a strongly consistent read; default: ``consistent_read``.
        """
        if not is_well_formed(sid):
            return None
        storage_key = self.storage_key(sid)
        if consistent is None:
            consistent = self.consistent_read
        stored = await self._read(storage_key, consistent=consistent)
        if stored is None:
            return None
        now = self._clock()
        if stored.expiry(self.absolute_lifetime_s) <= now:
            if not self.keep_expired:
                await self._delete_expired(storage_key, now)
            return None
        return await self._full_record(sid, storage_key, stored)

    async def _delete_expired(self, storage_key: str, now: float) -> None:
        try:
            await self._call("DeleteItem", self.requests.delete_if_ended(storage_key, now=now))
        except ConditionalCheckFailed:
            pass  # renewed or deleted meanwhile
        except CyclicSessError as exc:  # clean-up only: the read's answer stands
            log.warning("session %s: expired item not deleted: %s", self._log_id(storage_key), exc)

    # -- creating --------------------------------------------------------------

    async def create(self, data: Mapping[str, Any]) -> str:
        """Store a new session and return its id (256 random bits).

        Raises:
            EncodeError: a value cannot be stored (nothing is written).
            SessionTooLarge: the item would exceed 400 KB (nothing is written).
        """
        return (await self.create_record(data)).id

    async def create_record(self, data: Mapping[str, Any]) -> SessionRecord:
        """Like :meth:`create`, returning the new session's record."""
        sid = new_session_id()
        storage_key = self.storage_key(sid)
        blob = self._encode(data, storage_key)
        now = self._clock()
        placed = await self._place(storage_key, blob, now)
        stored = StoredItem(
            blob=blob,
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=int(now),
            version=1,
            user=self._user_of(data),
            data_ref=placed.data_ref,
            data_expires=placed.data_expires,
        )
        await self._put_new(storage_key, self._new_item(storage_key, stored))
        return stored.record(sid, dict(data), self.absolute_lifetime_s, storage_key)

    # -- saving ----------------------------------------------------------------

    async def set(self, sid: str, data: Mapping[str, Any], *, version: int | None = None) -> int:
        """Replace a live session's data, renew its lifetime, return the new version.

        The write applies once, however often its request is retried (each
        write carries a random write id only it has).

        Args:
            sid: the session id.
            data: the new session dict.
            version: the version the caller read; if given, the write fails
                when another writer saved first (no lost updates).

        Raises:
            SessionNotFound: the session is unknown, destroyed or expired
                (it is not recreated).
            SessionConflict: ``version`` is no longer the stored version; its
                ``current`` is the session as stored, when it could be read.
            EncodeError, SessionTooLarge: nothing was written.
        """
        version_now, _ = await self._save(sid, data, version)
        return version_now

    async def save_record(self, record: SessionRecord, data: Mapping[str, Any]) -> SessionRecord:
        """Save ``data`` over the version ``record`` was read at; return the new record.

        Raises:
            SessionNotFound, SessionConflict, EncodeError, SessionTooLarge: as :meth:`set`.
        """
        version, now = await self._save(
            record.id, data, record.version, touches=record.touches_since_save
        )
        stored = StoredItem(
            blob=b"",
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=int(record.created_at.timestamp()),
            version=version,
        )
        return stored.record(
            record.id, dict(data), self.absolute_lifetime_s, self.storage_key(record.id)
        )

    async def _save(
        self, sid: str, data: Mapping[str, Any], version: int | None, touches: int | None = None
    ) -> tuple[int, float]:
        """Write ``data``; return the new version and the time the write was made at."""
        if not is_well_formed(sid):
            raise SessionNotFound("malformed session id")
        storage_key = self.storage_key(sid)
        blob = self._encode(data, storage_key)
        now = self._clock()
        write_id = new_write_id()
        placed = await self._place(storage_key, blob, now, touches)  # a new data item, if large
        payload = self.requests.save(
            storage_key,
            blob,
            now=now,
            ttl_s=self.ttl_s,
            write_id=write_id,
            version=version,
            user=self._user_of(data),
            data_ref=placed.data_ref,
            data_expires=placed.data_expires or 0,
        )
        try:
            answer = await self._call("UpdateItem", payload)
        except ConditionalCheckFailed as failure:
            return await self._explain_failed_save(sid, failure, version, write_id, now), now
        if version is not None:
            return version + 1, now
        return int(answer["Attributes"]["ver"]["N"]), now

    async def _explain_failed_save(
        self,
        sid: str,
        failure: ConditionalCheckFailed,
        version: int | None,
        write_id: str,
        now: float,
    ) -> int:
        """Tell our own earlier attempt, a missing or expired session and a conflict apart."""
        storage_key = self.storage_key(sid)
        old = await self._item_after(storage_key, failure)
        try:
            stored = self.layout.parse(old) if old else None
        except DecodeError:
            stored = None
        if stored is not None and stored.write_id == write_id:
            return stored.version  # our first attempt applied; its answer was lost
        if stored is None or stored.expiry(self.absolute_lifetime_s) <= now:
            raise SessionNotFound("the session does not exist or has expired") from failure
        raise SessionConflict(
            f"session was saved by another writer (read version {version}, "
            f"stored version {stored.version})",
            expected_version=version if version is not None else stored.version,
            current_version=stored.version,
            current=await self._full_record(sid, storage_key, stored),
        ) from failure

    # -- ending and moving -----------------------------------------------------

    async def destroy(self, session: str | SessionRecord) -> bool:
        """Delete a session, by id or by record; return whether an item was deleted.

        A no-op for unknown or malformed ids. A record from :meth:`sessions_of`
        (which knows no id) is deleted by its storage key. A large session's
        data item goes with it.
        """
        if isinstance(session, SessionRecord):
            storage_key = session.storage_key or self.storage_key(session.id)
        elif is_well_formed(session):
            storage_key = self.storage_key(session)
        else:
            return False
        answer = await self._call("DeleteItem", self.requests.delete(storage_key))
        await self._drop_data(storage_key, answer.get("Attributes"))
        return bool(answer.get("Attributes"))

    async def regenerate(self, sid: str, *, data: Mapping[str, Any] | None = None) -> str:
        """Move a live session to a new id and end the old one; return the new id.

        Call it when privileges change (at login) so a planted id is worthless.
        The data (or ``data``, when given: the login's, written with the move),
        the creation time and so the absolute lifetime carry over. The old
        item is first ended (its expiry set to now) and marked with the new
        key, on condition that it is live; the data is then written under the
        new id: a concurrent destroy or save cannot be undone or lost, and a
        retry of the marking whose answer was lost finds its own mark. If the
        new item cannot be written after that, the session is gone (log in
        again), never duplicated.

        Raises:
            SessionNotFound: the session is unknown, destroyed or expired.
            SessionMoveIncomplete: the old session was ended but writing the
                new one failed; its ``new_id`` is where it is, if anywhere.
            EncodeError, SessionTooLarge: ``data`` cannot be stored (nothing
                is written).
        """
        return (await self.regenerate_record(sid, data=data)).id

    async def regenerate_record(
        self, sid: str, *, data: Mapping[str, Any] | None = None
    ) -> SessionRecord:
        """Like :meth:`regenerate`, returning the moved session's record."""
        if not is_well_formed(sid):
            raise SessionNotFound("malformed session id")
        old_key = self.storage_key(sid)
        new_sid = new_session_id()
        new_key = self.storage_key(new_sid)
        now = self._clock()
        # Large new data goes to its data item first: nothing is lost if that fails.
        placed = None
        if data is not None:
            placed = await self._place(new_key, self._encode(data, new_key), now)
        try:
            answer = await self._call(
                "UpdateItem", self.requests.end_and_mark(old_key, now=now, moved_to=new_key)
            )
            old_item = answer.get("Attributes") or {}
        except ConditionalCheckFailed as failure:
            # A retry whose first attempt was applied (its answer lost) fails its
            # condition on its own mark: the data is still in the item.
            if failure.attempts < 2:
                raise SessionNotFound("the session does not exist or has expired") from failure
            old_item = await self._item_after(old_key, failure) or {}
            if old_item.get(MOVED_TO) != {"S": new_key}:
                raise SessionNotFound("the session does not exist or has expired") from failure
        try:
            old = self.layout.parse(old_item)
        except DecodeError as exc:
            raise SessionNotFound("the session was unreadable") from exc
        if placed is None:  # the same data: the new head takes the old one's (or its item)
            blob = await self._data_of(old_key, old)
            try:
                moved_data = self._decode(blob) if blob is not None else None
            except DecodeError:
                moved_data = None
            if moved_data is None:
                raise SessionNotFound("the session was unreadable")
            placed = Placed(old.blob, old.data_ref, old.data_expires)
        else:
            moved_data = dict(data or {})
        moved = StoredItem(
            blob=placed.blob,
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=old.created,
            version=1,
            user=self._user_of(moved_data),
            data_ref=placed.data_ref,
            data_expires=placed.data_expires,
        )
        try:
            await self._put_new(new_key, self._new_item(new_key, moved))
        except (StoreUnavailable, DynamoDBError) as exc:
            raise SessionMoveIncomplete(
                f"the session was moved but its new item was not confirmed: {exc}",
                attempts=getattr(exc, "attempts", 1),
                new_id=new_sid,
            ) from exc
        # Two writes: the old head has ended, and TTL (or a read) removes it.
        return moved.record(new_sid, moved_data, self.absolute_lifetime_s, new_key)

    # -- the table -------------------------------------------------------------

    async def ensure_table(self, *, timeout: timedelta = timedelta(minutes=2)) -> None:
        """Create the table if it is missing (on-demand billing) and enable TTL.

        Waits until the table is ACTIVE. A server without the TTL API (a local
        emulator) gets a warning, not an error.
        """
        await _table.ensure_table(await self._open_client(), self.layout, timeout=timeout)

    async def purge_expired(self, *, grace: timedelta = timedelta(minutes=5)) -> int:
        """Delete every session that ended more than ``grace`` ago; return how many.

        A maintenance job for tables DynamoDB's TTL sweeps too slowly (or, on a
        local server, never). The grace is how far the clocks of this host and
        of the web servers may disagree: a session is deleted only if it had
        ended ``grace`` before this host's now, both when the scan found it and
        when its (conditional) delete is applied, so a session renewed in
        between is never deleted.
        """
        grace_s = duration_seconds(grace, "grace", allow_zero=True)
        return await _table.purge_expired(
            await self._open_client(),
            self.requests,
            key_prefix=self._hasher.prefix,
            cutoff=lambda: self._clock() - grace_s,
        )
