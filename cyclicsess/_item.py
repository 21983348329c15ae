"""The session item: attribute names, wire encoding, parsing and DynamoDB's size rule."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._capacity import number_size
from .errors import DecodeError

__all__ = [
    "DATA_REF",
    "HEAD_LIMIT",
    "ITEM_SIZE_LIMIT",
    "MOVED_TO",
    "USER",
    "USER_INDEX",
    "WRITE_ID",
    "SessionRecord",
    "StoredItem",
    "TableLayout",
    "number",
]

#: DynamoDB's item size limit in bytes (names and values together).
ITEM_SIZE_LIMIT = 409_600

DATA = "data"
EXPIRES = "expires"
TOUCHED = "touched"
CREATED = "created"
VERSION = "ver"
#: Touches since the data was last written (where large data goes depends on it).
TOUCHES = "tn"
#: A random token of the last data write: how a retried write recognises its own.
WRITE_ID = "wid"
#: Set on an item that regenerate moved: the storage key it moved to (it has ended).
MOVED_TO = "moved_to"
#: The keyed hash of the session's user (``data[user_key]``): the user index's key.
USER = "uid"
#: The global secondary index on :data:`USER` (keys only).
USER_INDEX = "by_user"
#: On a head whose data is too large to keep in it: the key of its data item.
DATA_REF = "dref"
#: ... and when that data item expires (it is renewed before the session outlives it).
DATA_EXPIRES = "dexp"
#: What separates a data item's key from its session's storage key.
DATA_KEY_SEPARATOR = "#"
#: The largest head that keeps its data inline: one write unit, so touches cost one.
HEAD_LIMIT = 1024

#: Characters of a write id (base64url of 9 random bytes).
WRITE_ID_LENGTH = 12
# Numbers with as many significant digits as a set() may leave behind (seconds and
# milliseconds until the year 2286, a trillion versions), for the size estimate.
_WORST_CASE_NUMBERS = {
    EXPIRES: 9_999_999_999,
    TOUCHED: 9_999_999_999_999,
    CREATED: 9_999_999_999,
    VERSION: 999_999_999_999,
    TOUCHES: 999_999_999_999,
}
#: The latest time a stored number may name: 9999-12-31T23:59:59Z. Beyond it
#: (or before 1970) an item is corrupt, not a session.
_LAST_EPOCH_S = 253_402_300_799


def number(value: int) -> dict[str, str]:
    """A DynamoDB number attribute value."""
    return {"N": str(value)}


def _utc(epoch_seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc)


@dataclass(frozen=True)
class SessionRecord:
    """A session as read from the store.

    Its ``repr`` shows neither the id nor the data, only the data's keys: it
    reaches logs and error trackers.

    Attributes:
        id: the session id (the cookie's value, never stored); empty in the
            records :meth:`SessionStore.sessions_of` lists, which know only
            the storage key.
        data: the user's session dict.
        version: incremented by every data write; pass it to ``set`` to detect conflicts.
        expires_at: when the session ends unless touched or saved again (UTC).
        touched_at: the last write or touch (UTC, millisecond precision).
        created_at: when the session was created (UTC).
        storage_key: the key its item is stored under (a hash of the id: safe to show).
        touches_since_save: touches since the data was last written (the
            store places large data by it).
        stored_apart: whether the data lives in a data item of its own.
    """

    id: str = field(repr=False)
    data: dict[str, Any] = field(repr=False)
    version: int
    expires_at: dt.datetime
    touched_at: dt.datetime
    created_at: dt.datetime
    storage_key: str = ""
    touches_since_save: int = 0
    stored_apart: bool = False

    def __repr__(self) -> str:
        return (
            f"SessionRecord(id=<hidden>, keys={sorted(map(str, self.data))}, "
            f"version={self.version}, expires_at={self.expires_at.isoformat()}, "
            f"touched_at={self.touched_at.isoformat()}, "
            f"created_at={self.created_at.isoformat()})"
        )


@dataclass(frozen=True)
class StoredItem:
    """A session's head item, parsed from the wire, with the still-encoded data.

    ``blob`` is the data when the head holds it; when the data is large it
    lives in an item of its own, named by ``data_ref`` (``blob`` is then empty
    until that item is read), which expires at ``data_expires``.
    """

    blob: bytes
    expires: int  # epoch seconds
    touched_ms: int  # epoch milliseconds
    created: int  # epoch seconds
    version: int
    write_id: str | None = None
    user: str | None = None  # the user index key, if the session has a user
    data_ref: str | None = None
    data_expires: int | None = None  # epoch seconds
    touches: int = 0  # since the data was last written

    def expiry(self, absolute_lifetime_s: float | None) -> float:
        """Epoch seconds at which the session ends, the absolute lifetime included."""
        if absolute_lifetime_s is None:
            return self.expires
        return min(self.expires, self.created + absolute_lifetime_s)

    def record(
        self,
        sid: str,
        data: dict[str, Any],
        absolute_lifetime_s: float | None,
        storage_key: str = "",
    ) -> SessionRecord:
        """The public view of this item."""
        return SessionRecord(
            id=sid,
            data=data,
            version=self.version,
            expires_at=_utc(self.expiry(absolute_lifetime_s)),
            touched_at=_utc(self.touched_ms / 1000),
            created_at=_utc(self.created),
            storage_key=storage_key,
            touches_since_save=self.touches,
            stored_apart=self.data_ref is not None,
        )


@dataclass(frozen=True)
class TableLayout:
    """Where and how sessions are stored in a table.

    Args:
        table: the table name.
        hash_key: the partition key attribute (type S).
        range_key: the sort key attribute (type S), for single-table designs;
            it holds the same storage key as the partition key.
        data_type: ``"B"`` or ``"S"``, from the codec.
        indexed: whether items carry the user index key (``user_key`` is set).
    """

    table: str
    hash_key: str = "id"
    range_key: str | None = None
    data_type: Literal["B", "S"] = "B"
    indexed: bool = False

    def key(self, storage_key: str) -> dict[str, dict[str, str]]:
        """The ``Key`` of a session's item."""
        key = {self.hash_key: {"S": storage_key}}
        if self.range_key is not None:
            key[self.range_key] = {"S": storage_key}
        return key

    def data_value(self, blob: bytes) -> dict[str, str]:
        """The wire value of encoded session data."""
        if self.data_type == "S":
            return {"S": blob.decode()}
        return {"B": base64.b64encode(blob).decode()}

    def new_item(
        self,
        storage_key: str,
        blob: bytes,
        *,
        expires: int,
        touched_ms: int,
        created: int,
        user: str | None = None,
        data_ref: str | None = None,
        data_expires: int | None = None,
    ) -> dict[str, Any]:
        """A complete head item for ``PutItem``, at version 1 (data inline or referred to)."""
        item: dict[str, Any] = self.key(storage_key)
        if data_ref is None:
            item[DATA] = self.data_value(blob)
        else:
            item[DATA_REF] = {"S": data_ref}
            item[DATA_EXPIRES] = number(data_expires or 0)
        item[EXPIRES] = number(expires)
        item[TOUCHED] = number(touched_ms)
        item[CREATED] = number(created)
        item[VERSION] = number(1)
        if user is not None:
            item[USER] = {"S": user}
        return item

    def data_key(self, storage_key: str, token: str) -> str:
        """The key of a data item of the session stored under ``storage_key``."""
        return f"{storage_key}{DATA_KEY_SEPARATOR}{token}"

    def is_data_key(self, unprefixed_key: str) -> bool:
        """Whether a key (its key prefix removed) names a data item, not a session's head."""
        return DATA_KEY_SEPARATOR in unprefixed_key

    def data_item(self, data_key: str, blob: bytes, *, expires: int) -> dict[str, Any]:
        """A data item: a large session's data, apart from its head."""
        item: dict[str, Any] = self.key(data_key)
        item[DATA] = self.data_value(blob)
        item[EXPIRES] = number(expires)
        return item

    def data_item_size(self, data_key: str, blob: bytes) -> int:
        """What DynamoDB counts for a data item holding ``blob``."""
        key_bytes = len(data_key.encode())
        size = sum(len(name.encode()) + key_bytes for name in self.key(data_key))
        return size + len(DATA) + len(blob) + len(EXPIRES) + number_size("9999999999")

    def parse_data(self, item: Mapping[str, Any]) -> bytes:
        """The blob of a data item; ``DecodeError`` if it is not one."""
        try:
            return self._blob(item[DATA])
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise DecodeError(f"item is not a session's data item: {exc!r}") from exc

    def _blob(self, value: Mapping[str, Any]) -> bytes:
        if self.data_type == "S":
            return str(value["S"]).encode()
        return base64.b64decode(value["B"], validate=True)

    def item_size(self, storage_key: str, blob: bytes) -> int:
        """The most DynamoDB can count for a session item holding ``blob``.

        Every attribute any write may add is counted at its largest: the
        numbers, the write id, and the key ``regenerate`` marks a moved item
        with; names and strings in UTF-8 bytes.
        """
        key_bytes = len(storage_key.encode())
        size = sum(len(name.encode()) + key_bytes for name in self.key(storage_key))
        size += len(DATA) + len(blob)
        for name, value in _WORST_CASE_NUMBERS.items():
            size += len(name) + number_size(str(value))
        size += len(WRITE_ID) + WRITE_ID_LENGTH
        size += len(MOVED_TO) + key_bytes  # the new key has the old one's length
        if self.indexed:  # the user index key has a storage key's length
            size += len(USER) + key_bytes
        return size

    def head_size(self, storage_key: str) -> int:
        """The most DynamoDB can count for a head whose data lives in a data item."""
        token_bytes = len(DATA_KEY_SEPARATOR) + WRITE_ID_LENGTH
        reference = len(DATA_REF) + len(storage_key.encode()) + token_bytes
        expiry = len(DATA_EXPIRES) + number_size("9999999999")
        return self.item_size(storage_key, b"") - len(DATA) + reference + expiry

    def parse(self, item: Mapping[str, Any]) -> StoredItem:
        """Read an item's attributes; ``DecodeError`` if any is missing or mistyped."""
        try:
            reference = item.get(DATA_REF)
            blob = b"" if reference is not None else self._blob(item[DATA])
            write_id = item.get(WRITE_ID)
            user = item.get(USER)
            return StoredItem(
                blob=blob,
                expires=_epoch(item, EXPIRES, 1),
                touched_ms=_epoch(item, TOUCHED, 1000),
                created=_epoch(item, CREATED, 1),
                version=int(item[VERSION]["N"]),
                write_id=None if write_id is None else str(write_id["S"]),
                user=None if user is None else str(user["S"]),
                data_ref=None if reference is None else str(reference["S"]),
                data_expires=None if reference is None else _epoch(item, DATA_EXPIRES, 1),
                touches=int(item[TOUCHES]["N"]) if TOUCHES in item else 0,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise DecodeError(f"item is not a session item: {exc!r}") from exc


def _epoch(item: Mapping[str, Any], name: str, per_second: int) -> int:
    """A stored time, refused (``ValueError``) outside 1970 to 9999."""
    value = int(item[name]["N"])
    if not 0 <= value <= _LAST_EPOCH_S * per_second:
        raise ValueError(f"{name}={value} is not a time between 1970 and 9999")
    return value
