"""Requests over many items: paginated reads and batched gets, on the transport.

Kept apart from :mod:`cyclicsess._dynamo`, whose one job is a single call:
these follow ``LastEvaluatedKey`` and resend ``UnprocessedKeys`` within the
call's retry budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ._dynamo import DynamoClient
from .errors import StoreUnavailable

__all__ = ["batch_get", "pages"]

#: The most keys one BatchGetItem may ask for.
BATCH_GET_LIMIT = 100


async def pages(
    client: DynamoClient, operation: str, payload: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Yield every item a ``Scan`` or ``Query`` returns, following ``LastEvaluatedKey``."""
    request = dict(payload)
    while True:
        page = await client.call(operation, request)
        for item in page.get("Items", ()):
            yield item
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            return
        request["ExclusiveStartKey"] = last_key


async def batch_get(
    client: DynamoClient, table: str, keys: Sequence[Mapping[str, Any]], *, consistent: bool
) -> list[dict[str, Any]]:
    """The items under ``keys`` that exist (any order), 100 keys a request.

    Unprocessed keys are asked for again with backoff inside the retry budget.

    Raises:
        StoreUnavailable: some keys were still unprocessed at the end.
    """
    found: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        pending: list[Mapping[str, Any]] = list(keys[start : start + BATCH_GET_LIMIT])
        deadline = loop.time() + client.retry.budget.total_seconds()
        attempts = 0
        while pending:
            attempts += 1
            request = {"RequestItems": {table: {"Keys": pending, "ConsistentRead": consistent}}}
            answer = await client.call("BatchGetItem", request)
            found.extend(answer.get("Responses", {}).get(table, ()))
            pending = list(answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", ()))
            if not pending:
                break
            delay = random.uniform(0, 0.05 * 2**attempts)  # noqa: S311 - jitter
            if loop.time() + delay >= deadline:
                raise StoreUnavailable(
                    f"BatchGetItem left {len(pending)} keys unprocessed", attempts=attempts
                )
            await asyncio.sleep(delay)
    return found
