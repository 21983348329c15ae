"""SessionStore: the session policy (lifetimes, touch throttle, expiry, versions).

It turns each operation into one or two DynamoDB requests through the
transport and never builds HTTP itself. Every write is conditional: a touch or
a save never brings back a session that was destroyed or has expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from . import table as _table
from ._connection import open_client
from ._dynamo import DynamoClient, RetryPolicy
from ._item import (
    ITEM_SIZE_LIMIT,
    MOVED_TO,
    WRITE_ID_LENGTH,
    SessionRecord,
    StoredItem,
    TableLayout,
)
from ._requests import Requests
from ._shared import SharedRun
from .codec import Codec, MsgpackCodec
from .errors import (
    ConditionalCheckFailed,
    ConfigurationError,
    CyclicSessError,
    DecodeError,
    ResourceNotFound,
    SessionConflict,
    SessionNotFound,
    SessionTooLarge,
)
from .ids import KeyHasher, is_well_formed, new_session_id

__all__ = ["Clock", "SessionStore"]

log = logging.getLogger("cyclicsess")

#: A callable returning the current time in epoch seconds (``time.time``).
Clock = Callable[[], float]

# The default touch_interval is ttl / 20: touches, most of a session store's
# writes, fall from one per 30 s of activity to one per 5% of the lifetime
# (bench/cost.py: -37% write units on its trace), for a lifetime error of 5%.
_DEFAULT_TOUCHES_PER_TTL = 20


def _seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    if not isinstance(value, timedelta):
        example = f"timedelta(seconds={value})" if isinstance(value, (int, float)) else "timedelta"
        raise ConfigurationError(
            f"{name} must be a datetime.timedelta, not {type(value).__name__}: "
            f"pass {name}={example}"
        )
    seconds = value.total_seconds()
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value}")
    return seconds


def _new_write_id() -> str:
    return secrets.token_urlsafe(WRITE_ID_LENGTH * 3 // 4)


class SessionStore:
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
    """

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        ttl: timedelta = timedelta(days=1),
        touch_interval: timedelta | None = None,
        absolute_lifetime: timedelta | None = None,
        keep_expired: bool = False,
        secret: str | bytes | None = None,
        key_prefix: str = "sess:",
        hash_key: str = "id",
        range_key: str | None = None,
        codec: Codec | None = None,
        consistent_read: bool = True,
        retry: RetryPolicy | None = None,
        clock: Clock = time.time,
        max_connections: int = 64,
        client: DynamoClient | None = None,
    ) -> None:
        if not table:
            raise ConfigurationError("a table name is required")
        self.codec: Codec = codec or MsgpackCodec()
        self.layout = TableLayout(table, hash_key, range_key, self.codec.attribute_type)
        self.ttl_s = _seconds(ttl, "ttl")
        self.touch_interval_s = (
            self.ttl_s / _DEFAULT_TOUCHES_PER_TTL
            if touch_interval is None
            else _seconds(touch_interval, "touch_interval", allow_zero=True)
        )
        if self.touch_interval_s >= self.ttl_s:
            raise ConfigurationError(
                f"touch_interval ({touch_interval}) must be shorter than ttl ({ttl}): "
                "sessions would expire between touches and log active users out; "
                "leave touch_interval unset for ttl/20"
            )
        self.absolute_lifetime_s = (
            None if absolute_lifetime is None else _seconds(absolute_lifetime, "absolute_lifetime")
        )
        self.requests = Requests(self.layout, self.absolute_lifetime_s)
        self.keep_expired = keep_expired
        self.consistent_read = consistent_read
        self._hasher = KeyHasher(secret, key_prefix)
        self._clock = clock
        self._client = client
        self._client_options: dict[str, Any] = {
            "region": region,
            "endpoint_url": endpoint_url,
            "profile": profile,
            "retry": retry,
            "max_connections": max_connections,
        }
        self._opening = SharedRun(lambda: open_client(**self._client_options))

    @classmethod
    def from_env(cls, **options: Any) -> SessionStore:
        """A store configured like ``@cyclic.sh/session-store`` users already are.

        Reads the table name from ``CYCLIC_DB`` and the secret from
        ``SESSION_SECRET`` (if set); region, credentials and endpoint come from
        the usual ``AWS_*`` variables. Keyword options override.
        """
        table = options.pop("table", None) or os.environ.get("CYCLIC_DB")
        if not table:
            raise ConfigurationError("set CYCLIC_DB to the table name (or pass table=)")
        options.setdefault("secret", os.environ.get("SESSION_SECRET") or None)
        return cls(table, **options)

    # -- life cycle ------------------------------------------------------------

    async def open(self) -> SessionStore:
        """Resolve credentials, region and endpoint and open the connection pool."""
        await self._open_client()
        return self

    async def _open_client(self) -> DynamoClient:
        client = self._client
        if client is None:
            # Concurrent first calls share one resolution (on any event loop).
            client = self._client = await asyncio.shield(self._opening.task())
        return client

    async def close(self) -> None:
        """Close the running event loop's connection pool; the store reopens it when used.

        What was resolved (credentials, region, endpoint) is kept.
        """
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> SessionStore:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def client(self) -> DynamoClient:
        """The transport, for maintenance calls; the store must be open."""
        if self._client is None:
            raise ConfigurationError("the store is not open: use `async with` or `await open()`")
        return self._client

    def storage_key(self, sid: str) -> str:
        """The key the item of a well-formed session id is stored under."""
        return self._hasher.storage_key(sid)

    # -- helpers ---------------------------------------------------------------

    def _log_id(self, storage_key: str) -> str:
        """A short, non-reversible tag of a session for log lines."""
        return storage_key[len(self._hasher.prefix) :][:12]

    async def _call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request; a missing table is named, with how to create it."""
        client = self._client or await self._open_client()
        try:
            return await client.call(operation, payload)
        except ResourceNotFound as exc:
            table = self.layout.table
            raise ResourceNotFound(
                exc.code,
                f"table {table!r} does not exist (or is not ACTIVE yet); create it with "
                f"`python -m cyclicsess ensure-table {table}` or `await store.ensure_table()`",
                status=exc.status,
                body=exc.body,
            ) from exc

    def _encode(self, data: Mapping[str, Any], storage_key: str) -> bytes:
        blob = self.codec.encode(data)
        size = self.layout.item_size(storage_key, blob)
        if size > ITEM_SIZE_LIMIT:
            raise SessionTooLarge(
                f"session item would be {size} bytes; DynamoDB allows {ITEM_SIZE_LIMIT}",
                size_bytes=size,
                limit_bytes=ITEM_SIZE_LIMIT,
            )
        return blob

    async def _read(self, storage_key: str, *, consistent: bool) -> StoredItem | None:
        """The item under ``storage_key``, or None if absent or unreadable."""
        answer = await self._call("GetItem", self.requests.read(storage_key, consistent=consistent))
        return self._parsed(storage_key, answer.get("Item"))

    def _parsed(self, storage_key: str, item: dict[str, Any] | None) -> StoredItem | None:
        if not item:
            return None
        try:
            return self.layout.parse(item)
        except DecodeError as exc:
            log.warning("session %s: unreadable item ignored: %s", self._log_id(storage_key), exc)
            return None

    async def _item_after(
        self, storage_key: str, failure: ConditionalCheckFailed
    ) -> dict[str, Any] | None:
        """The item a failed condition met, read again only if the server could not say.

        A server that honours ``ALL_OLD`` (DynamoDB) sends the item, or nothing
        when there is none; others (dynalite) never send it.
        """
        if failure.item is not None or self.client.returns_old_items:
            return failure.item
        answer = await self._call("GetItem", self.requests.read(storage_key, consistent=True))
        item: dict[str, Any] | None = answer.get("Item")
        return item

    async def _put_new(self, storage_key: str, item: dict[str, Any]) -> None:
        """Write a new item, refusing to overwrite one with the same key.

        A PutItem retried after its answer was lost fails its condition on its
        own first write: when the stored item is exactly ours, that is success.
        """
        try:
            await self._call("PutItem", self.requests.create(item))
        except ConditionalCheckFailed as failure:
            if failure.attempts < 2:
                raise  # a real clash of 256-bit ids: never expected
            if await self._item_after(storage_key, failure) != item:
                raise

    # -- the API ---------------------------------------------------------------

    async def create(self, data: Mapping[str, Any]) -> str:
        """Store a new session and return its id (256 random bits).

        Raises:
            EncodeError: a value cannot be stored (nothing is written).
            SessionTooLarge: the item would exceed 400 KB (nothing is written).
        """
        sid = new_session_id()
        storage_key = self._hasher.storage_key(sid)
        blob = self._encode(data, storage_key)
        now = self._clock()
        item = self.layout.new_item(
            storage_key,
            blob,
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=int(now),
        )
        await self._put_new(storage_key, item)
        return sid

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
        storage_key = self._hasher.storage_key(sid)
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
        try:
            data = self.codec.decode(stored.blob)
        except DecodeError as exc:
            log.warning("session %s: undecodable data ignored: %s", self._log_id(storage_key), exc)
            return None
        return stored.record(sid, data, self.absolute_lifetime_s)

    async def _delete_expired(self, storage_key: str, now: float) -> None:
        try:
            await self._call("DeleteItem", self.requests.delete_if_ended(storage_key, now=now))
        except ConditionalCheckFailed:
            pass  # renewed or deleted meanwhile
        except CyclicSessError as exc:  # clean-up only: the read's answer stands
            log.warning("session %s: expired item not deleted: %s", self._log_id(storage_key), exc)

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
            SessionConflict: ``version`` is no longer the stored version.
            EncodeError, SessionTooLarge: nothing was written.
        """
        if not is_well_formed(sid):
            raise SessionNotFound("malformed session id")
        storage_key = self._hasher.storage_key(sid)
        blob = self._encode(data, storage_key)
        now = self._clock()
        write_id = _new_write_id()
        payload = self.requests.save(
            storage_key, blob, now=now, ttl_s=self.ttl_s, write_id=write_id, version=version
        )
        try:
            answer = await self._call("UpdateItem", payload)
        except ConditionalCheckFailed as failure:
            return await self._explain_failed_set(storage_key, failure, version, write_id, now)
        if version is not None:
            return version + 1
        return int(answer["Attributes"]["ver"]["N"])

    async def _explain_failed_set(
        self,
        storage_key: str,
        failure: ConditionalCheckFailed,
        version: int | None,
        write_id: str,
        now: float,
    ) -> int:
        """Tell our own earlier attempt, a missing or expired session and a conflict apart."""
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
        ) from failure

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
        sid = session.id if isinstance(session, SessionRecord) else session
        if not is_well_formed(sid):
            return False
        storage_key = self._hasher.storage_key(sid)
        now = self._clock()
        if self.touch_interval_s > 0:
            if isinstance(session, SessionRecord):
                touched_s = session.touched_at.timestamp()
            else:
                stored = await self._read(storage_key, consistent=self.consistent_read)
                if stored is None:
                    return False
                touched_s = stored.touched_ms / 1000
            if now - touched_s < self.touch_interval_s:
                return False
        try:
            await self._call(
                "UpdateItem", self.requests.touch(storage_key, now=now, ttl_s=self.ttl_s)
            )
        except ConditionalCheckFailed:
            return False
        return True

    async def destroy(self, sid: str) -> None:
        """Delete a session; a no-op for unknown or malformed ids."""
        if not is_well_formed(sid):
            return
        await self._call("DeleteItem", self.requests.delete(self._hasher.storage_key(sid)))

    async def regenerate(self, sid: str) -> str:
        """Move a live session to a new id and delete the old one; return the new id.

        Call it when privileges change (at login) so a planted id is worthless.
        The data, its creation time and so its absolute lifetime carry over.
        The old item is first ended (its expiry set to now) and marked with the
        new key, on condition that it is live; its data, as that write found
        it, is then written under the new id: a concurrent destroy or save
        cannot be undone or lost, and a retry of the marking whose answer was
        lost finds its own mark and the data still there. If the new item
        cannot be written after that, the session is gone (log in again),
        never duplicated.

        Raises:
            SessionNotFound: the session is unknown, destroyed or expired.
        """
        return (await self._move(sid)).id

    async def _move(self, sid: str) -> SessionRecord:
        """Regenerate, returning the moved session's record."""
        if not is_well_formed(sid):
            raise SessionNotFound("malformed session id")
        old_key = self._hasher.storage_key(sid)
        new_sid = new_session_id()
        new_key = self._hasher.storage_key(new_sid)
        now = self._clock()
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
            data = self.codec.decode(old.blob)
        except DecodeError as exc:
            raise SessionNotFound("the session was unreadable") from exc
        moved = StoredItem(
            blob=old.blob,
            expires=int(now + self.ttl_s),
            touched_ms=int(now * 1000),
            created=old.created,
            version=1,
        )
        item = self.layout.new_item(
            new_key,
            moved.blob,
            expires=moved.expires,
            touched_ms=moved.touched_ms,
            created=moved.created,
        )
        await self._put_new(new_key, item)
        try:  # the old item is dead already: deleting it only tidies up
            await self._call("DeleteItem", self.requests.delete(old_key))
        except CyclicSessError as exc:
            log.warning("session %s moved; old item left to expire: %s", self._log_id(old_key), exc)
        return moved.record(new_sid, data, self.absolute_lifetime_s)

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
        return await _table.purge_expired(
            await self._open_client(),
            self.requests,
            key_prefix=self._hasher.prefix,
            cutoff=lambda: self._clock() - _seconds(grace, "grace", allow_zero=True),
        )
