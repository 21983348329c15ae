"""The DynamoDB requests of the store's operations, built as plain payloads.

Pure functions of a table layout, a storage key and the time: every
condition and its placeholders are written here once, and unit tests read
them without a server. The store decides when to send which.

Placeholders: ``#k`` the hash key, ``#e`` expires, ``#c`` created, ``#t``
touched, ``#d`` data, ``#v`` version, ``#w`` write id, ``#m`` moved-to;
``#u`` the user index key, ``#r`` the data item's key, ``#x`` its expiry,
``#n`` the touches since the last data write;
``:now``, ``:oldest`` (the absolute lifetime's cut-off), ``:e``, ``:t``,
``:d``, ``:w``, ``:u``, ``:r``, ``:x``, ``:need``, ``:ver``, ``:one``,
``:dead``, ``:to``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._item import (
    CREATED,
    DATA,
    DATA_EXPIRES,
    DATA_REF,
    EXPIRES,
    MOVED_TO,
    TOUCHED,
    TOUCHES,
    USER,
    USER_INDEX,
    VERSION,
    WRITE_ID,
    TableLayout,
    number,
)

__all__ = ["Requests", "lifetime_condition"]

Payload = dict[str, Any]


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


@dataclass(frozen=True)
class Requests:
    """Builds the store's requests for one table.

    Args:
        layout: the table and its key attributes.
        absolute_lifetime_s: the absolute lifetime in seconds, or None.
    """

    layout: TableLayout
    absolute_lifetime_s: float | None = None

    def _keyed(self, storage_key: str, **fields: Any) -> Payload:
        return {"TableName": self.layout.table, "Key": self.layout.key(storage_key), **fields}

    def _alive(self, now: float) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The item exists and has not ended at ``now``."""
        alive, names, values = lifetime_condition(now, self.absolute_lifetime_s, alive=True)
        names["#k"] = self.layout.hash_key
        return f"attribute_exists(#k) AND {alive}", names, values

    def read(self, storage_key: str, *, consistent: bool) -> Payload:
        """GetItem of a session's item."""
        return self._keyed(storage_key, ConsistentRead=consistent)

    def create(self, item: dict[str, Any]) -> Payload:
        """PutItem of a new item that never overwrites one with the same key."""
        return {
            "TableName": self.layout.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": self.layout.hash_key},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def save(
        self,
        storage_key: str,
        blob: bytes,
        *,
        now: float,
        ttl_s: float,
        write_id: str,
        version: int | None,
        user: str | None = None,
        data_ref: str | None = None,
        data_expires: int = 0,
    ) -> Payload:
        """UpdateItem of a live session's data, renewing its lifetime.

        It applies once: a retry of it meets its own write id and fails its
        condition (the store then recognises its own write). With ``version``
        it also fails if another writer saved first. With a user index, the
        session's user key is set (or removed, when ``user`` is None). With
        ``data_ref`` the head refers to a data item instead of holding ``blob``.
        """
        condition, names, values = self._alive(now)
        condition += " AND (attribute_not_exists(#w) OR #w <> :w)"
        names.update({"#t": TOUCHED, "#v": VERSION, "#w": WRITE_ID})
        names.update({"#d": DATA, "#r": DATA_REF, "#x": DATA_EXPIRES, "#n": TOUCHES})
        values.update(
            {
                ":e": number(int(now + ttl_s)),
                ":t": number(int(now * 1000)),
                ":w": {"S": write_id},
                ":one": number(1),
            }
        )
        if version is not None:
            condition += " AND #v = :ver"
            values[":ver"] = number(version)
        sets = ["#e = :e", "#t = :t", "#w = :w", "#v = #v + :one"]
        removes = ["#n"]
        if data_ref is None:
            sets.insert(0, "#d = :d")
            values[":d"] = self.layout.data_value(blob)
            removes += ["#r", "#x"]
        else:
            sets[:0] = ["#r = :r", "#x = :x"]
            values.update({":r": {"S": data_ref}, ":x": number(data_expires)})
            removes.append("#d")
        if self.layout.indexed:
            names["#u"] = USER
            if user is None:
                removes.append("#u")
            else:
                sets.append("#u = :u")
                values[":u"] = {"S": user}
        return self._keyed(
            storage_key,
            UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            # With a version the new one is known: do not download the data
            # again (UPDATED_NEW would return it, being updated too).
            ReturnValues="NONE" if version is not None else "UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def touch(self, storage_key: str, *, now: float, ttl_s: float, margin_s: float) -> Payload:
        """UpdateItem renewing a live session's lifetime; the data is not written.

        It fails, too, when the session's data item would expire within
        ``margin_s`` of the renewed session: that item is renewed first.
        """
        condition, names, values = self._alive(now)
        condition += " AND (attribute_not_exists(#x) OR #x >= :need)"
        expires = int(now + ttl_s)
        names.update({"#t": TOUCHED, "#x": DATA_EXPIRES, "#n": TOUCHES})
        values.update(
            {
                ":e": number(expires),
                ":t": number(int(now * 1000)),
                ":need": number(int(expires + margin_s)),
                ":one": number(1),
            }
        )
        return self._keyed(
            storage_key,
            UpdateExpression="SET #e = :e, #t = :t ADD #n :one",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def touch_renewed(
        self, storage_key: str, *, now: float, ttl_s: float, data_ref: str, data_expires: int
    ) -> Payload:
        """UpdateItem renewing a live session and the expiry its data item now has."""
        condition, names, values = self._alive(now)
        condition += " AND #r = :r"
        names.update({"#t": TOUCHED, "#r": DATA_REF, "#x": DATA_EXPIRES, "#n": TOUCHES})
        values.update(
            {
                ":e": number(int(now + ttl_s)),
                ":t": number(int(now * 1000)),
                ":r": {"S": data_ref},
                ":x": number(data_expires),
                ":one": number(1),
            }
        )
        return self._keyed(
            storage_key,
            UpdateExpression="SET #e = :e, #t = :t, #x = :x ADD #n :one",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def move_out(
        self,
        storage_key: str,
        *,
        now: float,
        ttl_s: float,
        version: int,
        data_ref: str,
        data_expires: int,
    ) -> Payload:
        """UpdateItem swapping a live head's inline data for a data item of the same data.

        It applies only at ``version`` (the data the item was written from)
        and renews the session as a touch does; the version stays.
        """
        condition, names, values = self._alive(now)
        condition += " AND #v = :ver"
        names.update({"#t": TOUCHED, "#v": VERSION, "#d": DATA, "#r": DATA_REF, "#x": DATA_EXPIRES})
        names["#n"] = TOUCHES
        values.update(
            {
                ":e": number(int(now + ttl_s)),
                ":t": number(int(now * 1000)),
                ":ver": number(version),
                ":r": {"S": data_ref},
                ":x": number(data_expires),
            }
        )
        return self._keyed(
            storage_key,
            UpdateExpression="SET #r = :r, #x = :x, #e = :e, #t = :t REMOVE #d, #n",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def put_data(self, data_key: str, blob: bytes, *, expires: int) -> Payload:
        """PutItem of a data item (its key is new: nothing is overwritten)."""
        return {
            "TableName": self.layout.table,
            "Item": self.layout.data_item(data_key, blob, expires=expires),
        }

    def renew_data(self, data_key: str, *, expires: int) -> Payload:
        """UpdateItem of a data item's expiry, if it still exists."""
        return self._keyed(
            data_key,
            UpdateExpression="SET #e = :e",
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#e": EXPIRES, "#k": self.layout.hash_key},
            ExpressionAttributeValues={":e": number(expires)},
        )

    def end_and_mark(self, storage_key: str, *, now: float, moved_to: str) -> Payload:
        """UpdateItem ending a live session now, marked with where it moved, returning it."""
        condition, names, values = self._alive(now)
        names["#m"] = MOVED_TO
        values.update({":dead": number(int(now)), ":to": {"S": moved_to}})
        return self._keyed(
            storage_key,
            UpdateExpression="SET #e = :dead, #m = :to",  # ended now, data kept
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def delete(self, storage_key: str) -> Payload:
        """DeleteItem, whatever the item holds; it returns what it deleted."""
        return self._keyed(storage_key, ReturnValues="ALL_OLD")

    def delete_of_user(self, storage_key: str, user: str) -> Payload:
        """DeleteItem of a session only while it still belongs to ``user`` (its index key)."""
        return self._keyed(
            storage_key,
            ReturnValues="ALL_OLD",
            ConditionExpression="#u = :u",
            ExpressionAttributeNames={"#u": USER},
            ExpressionAttributeValues={":u": {"S": user}},
        )

    def sessions_of(self, user: str) -> Payload:
        """Query of the user index: the keys of ``user``'s items (eventually consistent)."""
        return {
            "TableName": self.layout.table,
            "IndexName": USER_INDEX,
            "KeyConditionExpression": "#u = :u",
            "ExpressionAttributeNames": {"#u": USER},
            "ExpressionAttributeValues": {":u": {"S": user}},
        }

    def delete_if_ended(self, storage_key: str, *, now: float) -> Payload:
        """DeleteItem of an item only if it has still ended at ``now`` (none is renewed)."""
        ended, names, values = lifetime_condition(now, self.absolute_lifetime_s, alive=False)
        return self._keyed(
            storage_key,
            ConditionExpression=ended,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
