"""The session item: attribute names, wire encoding, parsing and DynamoDB's size rule."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import DecodeError

__all__ = [
    "ITEM_SIZE_LIMIT",
    "SessionRecord",
    "StoredItem",
    "TableLayout",
    "lifetime_condition",
    "number",
]

#: DynamoDB's item size limit in bytes (names and values together).
ITEM_SIZE_LIMIT = 409_600

DATA = "data"
EXPIRES = "expires"
TOUCHED = "touched"
CREATED = "created"
VERSION = "ver"

# Numbers with as many significant digits as a set() may leave behind (seconds and
# milliseconds until the year 2286, a trillion versions), for the size estimate.
_WORST_CASE_NUMBERS = {
    EXPIRES: 9_999_999_999,
    TOUCHED: 9_999_999_999_999,
    CREATED: 9_999_999_999,
    VERSION: 999_999_999_999,
}


def number(value: int) -> dict[str, str]:
    """A DynamoDB number attribute value."""
    return {"N": str(value)}


def lifetime_condition(
    now: float, absolute_lifetime_s: float | None, *, alive: bool
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition that a session item is live (or has ended) at ``now``.

    Returns the expression and its attribute names (``#e``, ``#c``) and values
    (``:now``, ``:oldest``): ended means ``expires`` has passed or, with an
    absolute lifetime, ``created`` is too old.
    """
    names = {"#e": EXPIRES}
    values: dict[str, Any] = {":now": number(int(now))}
    if absolute_lifetime_s is None:
        return ("#e > :now" if alive else "#e <= :now"), names, values
    names["#c"] = CREATED
    values[":oldest"] = number(int(now - absolute_lifetime_s))
    if alive:
        return "#e > :now AND #c > :oldest", names, values
    return "(#e <= :now OR #c <= :oldest)", names, values


def _utc(epoch_seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc)


@dataclass(frozen=True)
class SessionRecord:
    """A session as read from the store.

    Attributes:
        id: the session id (the cookie's value, never stored).
        data: the user's session dict.
        version: incremented by every data write; pass it to ``set`` to detect conflicts.
        expires_at: when the session ends unless touched or saved again (UTC).
        touched_at: the last write or touch (UTC, millisecond precision).
        created_at: when the session was created (UTC).
    """

    id: str
    data: dict[str, Any]
    version: int
    expires_at: dt.datetime
    touched_at: dt.datetime
    created_at: dt.datetime


@dataclass(frozen=True)
class StoredItem:
    """An item's metadata, parsed from the wire, with the still-encoded data."""

    blob: bytes
    expires: int  # epoch seconds
    touched_ms: int  # epoch milliseconds
    created: int  # epoch seconds
    version: int

    def expiry(self, absolute_lifetime_s: float | None) -> float:
        """Epoch seconds at which the session ends, the absolute lifetime included."""
        if absolute_lifetime_s is None:
            return self.expires
        return min(self.expires, self.created + absolute_lifetime_s)

    def record(
        self, sid: str, data: dict[str, Any], absolute_lifetime_s: float | None
    ) -> SessionRecord:
        """The public view of this item."""
        return SessionRecord(
            id=sid,
            data=data,
            version=self.version,
            expires_at=_utc(self.expiry(absolute_lifetime_s)),
            touched_at=_utc(self.touched_ms / 1000),
            created_at=_utc(self.created),
        )


def _number_size(text: str) -> int:
    """Bytes of a number: one per two significant digits, plus up to two (rounded up)."""
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 2


@dataclass(frozen=True)
class TableLayout:
    """Where and how sessions are stored in a table.

    Args:
        table: the table name.
        hash_key: the partition key attribute (type S).
        range_key: the sort key attribute (type S), for single-table designs;
            it holds the same storage key as the partition key.
        data_type: ``"B"`` or ``"S"``, from the codec.
    """

    table: str
    hash_key: str = "id"
    range_key: str | None = None
    data_type: Literal["B", "S"] = "B"

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
        self, storage_key: str, blob: bytes, *, expires: int, touched_ms: int, created: int
    ) -> dict[str, Any]:
        """A complete item for ``PutItem``, at version 1."""
        item: dict[str, Any] = self.key(storage_key)
        item[DATA] = self.data_value(blob)
        item[EXPIRES] = number(expires)
        item[TOUCHED] = number(touched_ms)
        item[CREATED] = number(created)
        item[VERSION] = number(1)
        return item

    def item_size(self, storage_key: str, blob: bytes) -> int:
        """The size DynamoDB counts for a session item, with worst-case metadata."""
        size = sum(len(name) + len(storage_key.encode()) for name in self.key(storage_key))
        size += len(DATA) + len(blob)
        for name, value in _WORST_CASE_NUMBERS.items():
            size += len(name) + _number_size(str(value))
        return size

    def parse(self, item: Mapping[str, Any]) -> StoredItem:
        """Read an item's attributes; ``DecodeError`` if any is missing or mistyped."""
        try:
            data = item[DATA]
            if self.data_type == "S":
                blob = str(data["S"]).encode()
            else:
                blob = base64.b64decode(data["B"], validate=True)
            return StoredItem(
                blob=blob,
                expires=int(item[EXPIRES]["N"]),
                touched_ms=int(item[TOUCHED]["N"]),
                created=int(item[CREATED]["N"]),
                version=int(item[VERSION]["N"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise DecodeError(f"item is not a session item: {exc!r}") from exc
