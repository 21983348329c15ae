"""Table management: create on request, wait for ACTIVE, enable TTL, purge ended items.

Nothing here runs unless asked: a store never creates tables by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ._bulk import pages
from ._dynamo import DynamoClient
from ._item import EXPIRES, USER, USER_INDEX, TableLayout
from ._requests import Requests, lifetime_condition
from .errors import (
    ConditionalCheckFailed,
    ConfigurationError,
    DynamoDBError,
    ResourceInUse,
    ResourceNotFound,
    ValidationError,
)

__all__ = ["create_table_request", "ensure_table", "purge_expired"]

log = logging.getLogger("cyclicsess")


def _key_schema(layout: TableLayout) -> list[dict[str, str]]:
    schema = [{"AttributeName": layout.hash_key, "KeyType": "HASH"}]
    if layout.range_key is not None:
        schema.append({"AttributeName": layout.range_key, "KeyType": "RANGE"})
    return schema


def _user_index() -> dict[str, Any]:
    return {
        "IndexName": USER_INDEX,
        "KeySchema": [{"AttributeName": USER, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


def _attributes(layout: TableLayout) -> list[dict[str, str]]:
    names = [key["AttributeName"] for key in _key_schema(layout)]
    if layout.indexed:
        names.append(USER)
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def create_table_request(layout: TableLayout) -> dict[str, Any]:
    """The ``CreateTable`` request for ``layout``: on-demand, keyed by strings, the user index.

    The templates of the command line (CloudFormation, Terraform) define the same table.
    """
    request: dict[str, Any] = {
        "TableName": layout.table,
        "AttributeDefinitions": _attributes(layout),
        "KeySchema": _key_schema(layout),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if layout.indexed:
        request["GlobalSecondaryIndexes"] = [_user_index()]
    return request


async def _describe(client: DynamoClient, table: str) -> dict[str, Any] | None:
    try:
        answer = await client.call("DescribeTable", {"TableName": table})
    except ResourceNotFound:
        return None
    description: dict[str, Any] = answer["Table"]
    return description


def _active(description: dict[str, Any] | None) -> bool:
    if description is None or description.get("TableStatus") != "ACTIVE":
        return False
    indexes = description.get("GlobalSecondaryIndexes") or ()
    return all(index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes)


async def _wait_active(
    client: DynamoClient, table: str, description: dict[str, Any] | None, timeout: timedelta
) -> dict[str, Any]:
    """Poll until the table and its indexes are ACTIVE; the last description."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds()
    delay = 0.05
    while not _active(description):
        if loop.time() + delay > deadline:
            raise ConfigurationError(f"table {table} did not become ACTIVE within {timeout}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        description = await _describe(client, table)
    assert description is not None  # noqa: S101 - _active() was True
    return description


async def _add_user_index(client: DynamoClient, layout: TableLayout) -> None:
    try:
        await client.call(
            "UpdateTable",
            {
                "TableName": layout.table,
                "AttributeDefinitions": _attributes(layout),
                "GlobalSecondaryIndexUpdates": [{"Create": _user_index()}],
            },
        )
    except ValidationError as exc:
        raise ConfigurationError(
            f"table {layout.table} has no user index and this server cannot add one to an "
            f"existing table ({exc}); recreate the table, or add the index {USER_INDEX!r} "
            f"(hash key {USER!r}, type S, keys only) yourself"
        ) from exc
    log.info("adding the user index to table %s", layout.table)


async def ensure_table(
    client: DynamoClient, layout: TableLayout, *, timeout: timedelta = timedelta(minutes=2)
) -> None:
    """Create ``layout.table`` unless it exists, wait until ACTIVE, enable TTL on ``expires``.

    With a user index (``layout.indexed``), a table without it gets it
    (UpdateTable), and the wait lasts until the index is ACTIVE too.

    Args:
        client: the transport.
        layout: the table name and key attributes.
        timeout: how long to wait for the table (and its index) to become ACTIVE.

    Raises:
        ConfigurationError: the table exists with another key schema, did not
            become ACTIVE in time, or needs an index this server cannot add.
    """
    table = layout.table
    description = await _describe(client, table)
    if description is None:
        try:
            await client.call("CreateTable", create_table_request(layout))
            log.info("created table %s", table)
        except ResourceInUse:
            pass  # somebody else is creating it
    description = await _wait_active(client, table, description, timeout)
    schema = sorted(description.get("KeySchema", []), key=lambda key: key["KeyType"])
    if schema != sorted(_key_schema(layout), key=lambda key: key["KeyType"]):
        raise ConfigurationError(
            f"table {table} has key schema {schema}, not {_key_schema(layout)}"
        )
    indexes = {i.get("IndexName") for i in description.get("GlobalSecondaryIndexes") or ()}
    if layout.indexed and USER_INDEX not in indexes:
        await _add_user_index(client, layout)
        await _wait_active(client, table, None, timeout)
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
    """Delete every item that had ended at ``cutoff()``; return how many.

    Session heads and the data items of large sessions both carry ``expires``.

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
        async for item in pages(client, "Scan", scan):
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
