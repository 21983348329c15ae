"""Table management: create on request, wait for ACTIVE, enable TTL, purge ended items.

Nothing here runs unless asked: a store never creates tables by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ._dynamo import DynamoClient
from ._item import EXPIRES, TableLayout
from ._requests import Requests, lifetime_condition
from .errors import (
    ConditionalCheckFailed,
    ConfigurationError,
    DynamoDBError,
    ResourceInUse,
    ResourceNotFound,
)

__all__ = ["ensure_table", "purge_expired"]

log = logging.getLogger("cyclicsess")


def _key_schema(layout: TableLayout) -> list[dict[str, str]]:
    schema = [{"AttributeName": layout.hash_key, "KeyType": "HASH"}]
    if layout.range_key is not None:
        schema.append({"AttributeName": layout.range_key, "KeyType": "RANGE"})
    return schema


async def _describe(client: DynamoClient, table: str) -> dict[str, Any] | None:
    try:
        answer = await client.call("DescribeTable", {"TableName": table})
    except ResourceNotFound:
        return None
    description: dict[str, Any] = answer["Table"]
    return description


async def ensure_table(
    client: DynamoClient, layout: TableLayout, *, timeout: timedelta = timedelta(minutes=2)
) -> None:
    """Create ``layout.table`` unless it exists, wait until ACTIVE, enable TTL on ``expires``.

    Args:
        client: the transport.
        layout: the table name and key attributes.
        timeout: how long to wait for the table to become ACTIVE.

    Raises:
        ConfigurationError: the table exists with another key schema, or did
            not become ACTIVE in time.
    """
    table = layout.table
    description = await _describe(client, table)
    if description is None:
        try:
            await client.call(
                "CreateTable",
                {
                    "TableName": table,
                    "AttributeDefinitions": [
                        {"AttributeName": key["AttributeName"], "AttributeType": "S"}
                        for key in _key_schema(layout)
                    ],
                    "KeySchema": _key_schema(layout),
                    "BillingMode": "PAY_PER_REQUEST",
                },
            )
            log.info("created table %s", table)
        except ResourceInUse:
            pass  # somebody else is creating it
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds()
    delay = 0.05
    while description is None or description.get("TableStatus") != "ACTIVE":
        if loop.time() + delay > deadline:
            raise ConfigurationError(f"table {table} did not become ACTIVE within {timeout}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        description = await _describe(client, table)
    schema = sorted(description.get("KeySchema", []), key=lambda key: key["KeyType"])
    if schema != sorted(_key_schema(layout), key=lambda key: key["KeyType"]):
        raise ConfigurationError(
            f"table {table} has key schema {schema}, not {_key_schema(layout)}"
        )
    await _enable_ttl(client, table)


async def _enable_ttl(client: DynamoClient, table: str) -> None:
    try:
        answer = await client.call("DescribeTimeToLive", {"TableName": table})
        ttl = answer.get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if ttl.get("AttributeName") != EXPIRES:
                log.warning(
                    "table %s has TTL on %r, not %r: expired sessions are not swept",
                    table,
                    ttl.get("AttributeName"),
                    EXPIRES,
                )
            return
        await client.call(
            "UpdateTimeToLive",
            {
                "TableName": table,
                "TimeToLiveSpecification": {"Enabled": True, "AttributeName": EXPIRES},
            },
        )
    except DynamoDBError as exc:
        if exc.code != "UnknownOperationException":
            raise
        log.warning(
            "this DynamoDB server has no TTL API: expired sessions stay in %s until purged "
            "(reads still ignore them)",
            table,
        )


#: Conditional deletes of one purge in flight at once.
_PURGE_CONCURRENCY = 16


async def purge_expired(
    client: DynamoClient,
    requests: Requests,
    *,
    key_prefix: str,
    cutoff: Callable[[], float],
) -> int:
    """Delete every session item that had ended at ``cutoff()``; return how many.

    Scans the table (paginated, strongly consistent) for items under
    ``key_prefix`` that had ended at the cut-off, and deletes each on the
    condition that it still has at the time of its delete: a session renewed
    after the scan saw it is left alone.
    """
    layout = requests.layout
    ended, names, values = lifetime_condition(cutoff(), requests.absolute_lifetime_s, alive=False)
    names["#k"] = layout.hash_key
    if key_prefix:
        values[":prefix"] = {"S": key_prefix}
        ended += " AND begins_with(#k, :prefix)"
    projection = ", ".join(["#k"] + (["#r"] if layout.range_key else []))
    if layout.range_key:
        names["#r"] = layout.range_key
    scan = {
        "TableName": layout.table,
        "ConsistentRead": True,  # a stale replica must not show a renewed item as expired
        "FilterExpression": ended,
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    slots = asyncio.Semaphore(_PURGE_CONCURRENCY)
    running: set[asyncio.Task[None]] = set()
    failures: list[Exception] = []
    deleted = 0

    async def delete(storage_key: str) -> None:
        nonlocal deleted
        try:
            await client.call("DeleteItem", requests.delete_if_ended(storage_key, now=cutoff()))
            deleted += 1
        except ConditionalCheckFailed:
            pass  # renewed (or deleted) since the scan
        except Exception as exc:
            failures.append(exc)
        finally:
            slots.release()

    try:
        async for item in client.scan(scan):
            if failures:
                break
            await slots.acquire()  # at most _PURGE_CONCURRENCY deletes in flight
            task = asyncio.ensure_future(delete(item[layout.hash_key]["S"]))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
    if failures:
        raise failures[0]
    return deleted
