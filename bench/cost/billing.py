"""A transport that bills every call by DynamoDB's rules and keeps a shadow copy of each item.

Every GetItem, PutItem, UpdateItem and DeleteItem goes through
:class:`CountingClient`, which bills it from the item sizes
(:mod:`cyclicsess._capacity`): reads per 4 KB of the item read (half for
eventually consistent reads, 1 unit for a missing item), writes per 1 KB of
the larger of the old and the new item (1 unit at least, failed conditional
writes too, on the existing item). It keeps a shadow copy of every item
(checked against each item a GetItem returns) to know the old size, and asks
dynalite for ``ConsumedCapacity`` to cross-check its own arithmetic.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cyclicsess import ConditionalCheckFailed, Credentials, DynamoClient
from cyclicsess._capacity import item_size, read_units, write_units

ITEM_OPS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem")

#: Why the current DynamoDB call is made: read, login, save, touch, logout.
PURPOSE: contextvars.ContextVar[str] = contextvars.ContextVar("purpose", default="read")


@contextmanager
def purpose(name: str) -> Iterator[None]:
    """Bill the calls made inside the block to ``name``."""
    token = PURPOSE.set(name)
    try:
        yield
    finally:
        PURPOSE.reset(token)


def _path(expr: str, names: Mapping[str, str]) -> list[str]:
    return [names.get(part, part) for part in expr.strip().split(".")]


def _get_path(item: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = item[path[0]]
    for part in path[1:]:
        value = value["M"][part]
    return value


def _set_path(item: dict[str, Any], path: list[str], value: Any) -> None:
    if len(path) == 1:
        item[path[0]] = value
        return
    child = dict(item[path[0]]["M"])  # copy along the path: the old item stays intact
    item[path[0]] = {"M": child}
    _set_path(child, path[1:], value)


def apply_update(
    old: Mapping[str, Any] | None, key: Mapping[str, Any], payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The item after an UpdateItem: ``SET a = :v, b.c = :w, n = n + :one ADD m :one REMOVE x``."""
    expression, _, removes = payload["UpdateExpression"].strip().partition(" REMOVE ")
    expression, _, adds = expression.partition(" ADD ")
    if expression[:4].upper() != "SET ":
        raise ValueError(f"unsupported update expression {expression!r}")
    names = payload.get("ExpressionAttributeNames", {})
    values = payload.get("ExpressionAttributeValues", {})
    new = dict(old) if old is not None else dict(key)

    def operand(text: str) -> Any:
        text = text.strip()
        return values[text] if text.startswith(":") else _get_path(new, _path(text, names))

    for assignment in expression[4:].split(","):
        target, source = assignment.split("=")
        if "+" in source:
            left, right = source.split("+")
            total = Decimal(operand(left)["N"]) + Decimal(operand(right)["N"])
            result: Any = {"N": str(total)}
        else:
            result = operand(source)
        _set_path(new, _path(target, names), result)
    for addition in filter(None, (part.strip() for part in adds.split(","))):
        name, value = addition.split()
        attribute = names.get(name, name)
        total = Decimal(new.get(attribute, {"N": "0"})["N"]) + Decimal(values[value]["N"])
        new[attribute] = {"N": str(total)}
    for name in filter(None, (part.strip() for part in removes.split(","))):
        new.pop(names.get(name, name), None)
    return new


@dataclass
class Tally:
    """What one policy's calls cost."""

    calls: Counter[str] = field(default_factory=Counter)
    rcu: float = 0.0
    wcu: int = 0
    wcu_by_purpose: Counter[str] = field(default_factory=Counter)
    calls_by_purpose: Counter[str] = field(default_factory=Counter)
    failed_conditions: int = 0
    written_sizes: list[int] = field(default_factory=list)
    checked: int = 0  # units dynalite reported and we compared
    disagreements: list[str] = field(default_factory=list)
    unreported: int = 0  # calls dynalite reported no units for (failed conditions)
    shadow_checked: int = 0
    shadow_mismatches: int = 0


class CountingClient(DynamoClient):
    """A ``DynamoClient`` that bills every item operation and keeps a shadow of each item."""

    def __init__(self, key_names: tuple[str, ...], **options: Any) -> None:
        super().__init__(**options)
        self.key_names = key_names
        self.tally = Tally()
        self.items: dict[tuple[str, ...], dict[str, Any]] = {}
        self.sizes: dict[tuple[str, ...], int] = {}

    def shadow_key(self, key: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(key[name]["S"] for name in self.key_names)

    def _bill(self, operation: str, units: float, reported: Any) -> None:
        tally = self.tally
        tally.calls[operation] += 1
        tally.calls_by_purpose[f"{PURPOSE.get()}:{operation}"] += 1
        if operation == "GetItem":
            tally.rcu += units
        else:
            tally.wcu += int(units)
            tally.wcu_by_purpose[PURPOSE.get()] += int(units)
        if reported is None:
            tally.unreported += 1
            return
        tally.checked += 1
        if float(reported.get("CapacityUnits", -1)) != units and len(tally.disagreements) < 5:
            tally.disagreements.append(f"{operation}: ours {units}, dynalite {reported}")

    async def call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if operation not in ITEM_OPS:
            return await super().call(operation, payload)
        request = {**payload, "ReturnConsumedCapacity": "TOTAL"}
        key_attrs = payload["Item"] if operation == "PutItem" else payload["Key"]
        key = self.shadow_key(key_attrs)
        old, old_size = self.items.get(key), self.sizes.get(key)
        try:
            answer = await super().call(operation, request)
        except ConditionalCheckFailed:
            # DynamoDB bills a failed condition by the existing item, 1 unit at least.
            self.tally.failed_conditions += 1
            self._bill(operation, write_units(old_size), None)
            raise
        reported = answer.pop("ConsumedCapacity", None)
        if operation == "GetItem":
            item = answer.get("Item")
            size = None if item is None else item_size(item)
            self.tally.shadow_checked += 1
            if (item or None) != old:
                self.tally.shadow_mismatches += 1
            self._bill(operation, read_units(size, bool(payload.get("ConsistentRead"))), reported)
            return answer
        if operation == "DeleteItem":
            self.items.pop(key, None)
            self.sizes.pop(key, None)
            self._bill(operation, write_units(old_size), reported)
            return answer
        if operation == "PutItem":
            new = dict(payload["Item"])
        else:
            new = apply_update(old, payload["Key"], payload)
        new_size = item_size(new)
        self.items[key], self.sizes[key] = new, new_size
        self.tally.written_sizes.append(new_size)
        self._bill(operation, write_units(old_size, new_size), reported)
        return answer


async def _local_credentials() -> Credentials:
    return Credentials("local", "local", None)


def counting_client(url: str, key_names: tuple[str, ...]) -> CountingClient:
    """A counting client for the local server at ``url``."""
    return CountingClient(
        key_names, endpoint_url=url, region="us-east-1", credentials=_local_credentials
    )


async def create_table(client: DynamoClient, table: str, key_names: tuple[str, ...]) -> None:
    """Create an on-demand table with string keys and wait until it is ACTIVE."""
    kinds = ("HASH", "RANGE")
    await client.call(
        "CreateTable",
        {
            "TableName": table,
            "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in key_names],
            "KeySchema": [
                {"AttributeName": k, "KeyType": kind}
                for k, kind in zip(key_names, kinds, strict=False)
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    for _ in range(200):
        answer = await client.call("DescribeTable", {"TableName": table})
        if answer["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"table {table} did not become ACTIVE")
