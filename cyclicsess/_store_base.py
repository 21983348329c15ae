"""The plumbing of :class:`~cyclicsess.store.SessionStore`: options, opening, item I/O.

Everything here serves the store's operations (in ``store.py``): validating
the options, resolving and opening the transport once (on any event loop),
sending a request with a missing table named, encoding with the size check,
reading and parsing items, and writing a new item exactly once.
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
from typing import TYPE_CHECKING, Any

from ._compress import decompressed
from ._connection import open_client
from ._dynamo import DynamoClient, RetryPolicy
from ._item import (
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
    DecodeError,
)
from .ids import KeyHasher

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Clock", "StoreBase", "duration_seconds", "new_write_id"]

log = logging.getLogger("cyclicsess")

#: A callable returning the current time in epoch seconds (``time.time``).
Clock = Callable[[], float]

# The default touch_interval is ttl / 20: touches, most of a session store's
# writes, fall from one per 30 s of activity to one per 5% of the lifetime
# (bench/cost.py: -37% write units on its trace), for a lifetime error of 5%.
_DEFAULT_TOUCHES_PER_TTL = 20


def duration_seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A duration option in seconds; ``ConfigurationError`` saying how to pass it right."""
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


def new_write_id() -> str:
    """A random id for one data write (72 bits)."""
    return secrets.token_urlsafe(WRITE_ID_LENGTH * 3 // 4)


class StoreBase:
    """Options, the transport and item I/O; the operations are :class:`SessionStore`'s."""

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
        user_key: str | None = None,
        separate_large_data: bool = True,
    ) -> None:
        if not table:
            raise ConfigurationError("a table name is required")
        self.codec: Codec = codec or MsgpackCodec()
        if user_key is not None and (not isinstance(user_key, str) or not user_key):
            raise ConfigurationError(
                f"user_key must be a key of the session dict, not {user_key!r}"
            )
        self.user_key = user_key
        self.separate_large_data = separate_large_data
        self.layout = TableLayout(
            table, hash_key, range_key, self.codec.attribute_type, indexed=user_key is not None
        )
        self.ttl_s = duration_seconds(ttl, "ttl")
        self.touch_interval_s = (
            self.ttl_s / _DEFAULT_TOUCHES_PER_TTL
            if touch_interval is None
            else duration_seconds(touch_interval, "touch_interval", allow_zero=True)
        )
        if self.touch_interval_s >= self.ttl_s:
            raise ConfigurationError(
                f"touch_interval ({touch_interval}) must be shorter than ttl ({ttl}): "
                "sessions would expire between touches and log active users out; "
                "leave touch_interval unset for ttl/20"
            )
        self.absolute_lifetime_s = (
            None
            if absolute_lifetime is None
            else duration_seconds(absolute_lifetime, "absolute_lifetime")
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
    def from_env(cls, **options: Any) -> Self:
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

    async def open(self) -> Self:
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

    async def __aenter__(self) -> Self:
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

    @property
    def key_prefix(self) -> str:
        """The prefix of every storage key."""
        return self._hasher.prefix

    @property
    def clock(self) -> Clock:
        """The store's clock (epoch seconds)."""
        return self._clock

    def storage_key(self, sid: str) -> str:
        """The key the item of a well-formed session id is stored under."""
        return self._hasher.storage_key(sid)

    # -- helpers ---------------------------------------------------------------

    def _log_id(self, storage_key: str) -> str:
        """A short, non-reversible tag of a session for log lines."""
        return storage_key[len(self._hasher.prefix) :][:12]

    async def _call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request (the transport names a missing table, and how to create it)."""
        client = self._client or await self._open_client()
        return await client.call(operation, payload)

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

    def _decode(self, blob: bytes) -> dict[str, Any]:
        """The session dict of stored bytes, compressed or not (``DecodeError`` if none)."""
        return self.codec.decode(decompressed(blob))

    def _record(self, sid: str, storage_key: str, stored: StoredItem) -> SessionRecord | None:
        """The public view of a stored item, or None if its data does not decode."""
        try:
            data = self._decode(stored.blob)
        except DecodeError as exc:
            log.warning("session %s: undecodable data ignored: %s", self._log_id(storage_key), exc)
            return None
        return stored.record(sid, data, self.absolute_lifetime_s, storage_key)

    def _user_of(self, data: Mapping[str, Any]) -> str | None:
        """The user index key of ``data`` (its ``user_key`` value, hashed), or None."""
        if self.user_key is None:
            return None
        user = data.get(self.user_key)
        return None if user is None else self._hasher.user_key(str(user))

    def _new_item(self, storage_key: str, stored: StoredItem) -> dict[str, Any]:
        return self.layout.new_item(
            storage_key,
            stored.blob,
            expires=stored.expires,
            touched_ms=stored.touched_ms,
            created=stored.created,
            user=stored.user,
            data_ref=stored.data_ref,
            data_expires=stored.data_expires,
        )

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
