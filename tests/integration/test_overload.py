"""DynamoDB in a slow moment, and its error answers, played by a stub on loopback.

A saturated pool must queue calls, not abandon requests already on the wire
and send them again; and what botocore retries for DynamoDB is retried here,
table-driven over canned answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from cyclicsess import (
    AccessDenied,
    ConditionalCheckFailed,
    Credentials,
    DynamoClient,
    DynamoDBError,
    ReplicatedWriteConflict,
    RetryPolicy,
    ServerError,
    StoreUnavailable,
    Throttled,
    ValidationError,
)
from tests.stubs import StubDynamo

QUICK = RetryPolicy(
    budget=dt.timedelta(seconds=0.5),
    attempt_timeout=dt.timedelta(seconds=0.25),
    base_delay=dt.timedelta(milliseconds=10),
    max_delay=dt.timedelta(milliseconds=50),
)


async def static_keys() -> Credentials:
    return Credentials("local", "local")


@pytest.fixture
async def stub() -> AsyncIterator[StubDynamo]:
    async with StubDynamo() as running:
        yield running


def client_for(stub: StubDynamo, retry: RetryPolicy = QUICK, pool: int = 64) -> DynamoClient:
    return DynamoClient(
        endpoint_url=stub.url,
        region="us-east-1",
        credentials=static_keys,
        retry=retry,
        max_connections=pool,
    )


async def test_a_saturated_pool_queues_calls_and_sends_each_request_once(stub: StubDynamo) -> None:
    stub.delay_s = 0.3  # DynamoDB in a slow moment
    client = client_for(stub, RetryPolicy(), pool=64)
    try:
        answers = await asyncio.gather(
            *(client.call("GetItem", {"TableName": "t", "Key": {}}) for _ in range(300))
        )
    finally:
        await client.close()
    assert answers == [{}] * 300
    assert len(stub.received) == 300  # the server saw exactly one request per call
    assert client.requests_sent == 300
    assert stub.in_flight_max == 64  # the pool was full, and no larger


async def test_a_call_that_cannot_get_a_connection_in_its_budget_says_so(
    stub: StubDynamo,
) -> None:
    stub.delay_s = 1.0
    patient = RetryPolicy(budget=dt.timedelta(seconds=3), attempt_timeout=dt.timedelta(seconds=3))
    client = client_for(stub, patient, pool=1)
    try:
        first = asyncio.ensure_future(client.call("GetItem", {}))  # holds the only connection
        await asyncio.sleep(0.05)
        client.retry = RetryPolicy(budget=dt.timedelta(seconds=0.3))
        with pytest.raises(StoreUnavailable, match="no connection of the pool") as info:
            await client.call("GetItem", {})
        assert info.value.attempts == 0  # it was never sent
        assert await first == {}
    finally:
        await client.close()
    assert len(stub.received) == 1


def canned(
    type_: str | None, status: int = 400, **headers: str
) -> tuple[int, dict[str, str], dict[str, str]]:
    return status, headers, ({"__type": type_, "message": "canned"} if type_ else {})


RETRIED: list[tuple[str, tuple[int, dict[str, str], dict[str, str]], type[DynamoDBError]]] = [
    (
        "throughput",
        canned("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
        Throttled,
    ),
    ("throttling", canned("com.amazon.coral.availability#ThrottlingException"), Throttled),
    ("request limit", canned("com.amazonaws.dynamodb.v20120810#RequestLimitExceeded"), Throttled),
    (
        "transaction in progress",
        canned("com.amazonaws.dynamodb.v20120810#TransactionInProgressException"),
        Throttled,
    ),
    ("429 without a body", canned(None, 429), Throttled),
    (
        "global table write conflict",
        canned("com.amazonaws.dynamodb.v20120810#ReplicatedWriteConflictException", 409),
        ReplicatedWriteConflict,
    ),
    (
        "code with a colon suffix",
        canned("com.amazon.coral.availability#ThrottlingException:http://internal.amazon.com/"),
        Throttled,
    ),
    (
        "code in x-amzn-ErrorType only",
        canned(None, 400, **{"x-amzn-ErrorType": "ThrottlingException:http://internal/"}),
        Throttled,
    ),
    ("500", canned("com.amazon.coral.service#InternalFailure", 500), ServerError),
    ("502 from a load balancer", canned(None, 502), ServerError),
    ("503", canned("com.amazon.coral.service#ServiceUnavailable", 503), ServerError),
    ("504", canned(None, 504), ServerError),
    ("request timeout", canned("com.amazon.coral.service#RequestTimeoutException"), ServerError),
]
NOT_RETRIED: list[tuple[str, tuple[int, dict[str, str], dict[str, str]], type[DynamoDBError]]] = [
    (
        "condition",
        canned("com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"),
        ConditionalCheckFailed,
    ),
    ("validation", canned("com.amazon.coral.validate#ValidationException"), ValidationError),
    (
        "validation with a colon suffix",
        canned("ValidationException:http://internal.amazon.com/coral/"),
        ValidationError,
    ),
    (
        "validation in x-amzn-ErrorType",
        canned(None, 400, **{"x-amzn-ErrorType": "ValidationException:http://x/"}),
        ValidationError,
    ),
    ("bad signature", canned("com.amazon.coral.service#InvalidSignatureException"), AccessDenied),
    ("unknown 400", canned("com.example#SomethingNew"), DynamoDBError),
]


@pytest.mark.parametrize(("case", "answer", "error"), RETRIED, ids=[c[0] for c in RETRIED])
async def test_retried_like_botocore(
    stub: StubDynamo,
    case: str,
    answer: tuple[int, dict[str, str], dict[str, str]],
    error: type[DynamoDBError],
) -> None:
    status, headers, body = answer
    for _ in range(2):
        stub.answer(status, body, **headers)
    client = client_for(stub)
    try:
        assert await client.call("GetItem", {}) == {}  # after two canned failures
        assert len(stub.received) == 3
        stub.answer(status, body, forever=True, **headers)
        with pytest.raises(StoreUnavailable) as info:
            await client.call("GetItem", {})
        assert isinstance(info.value.__cause__, error)
        assert "\n" not in str(info.value)
    finally:
        await client.close()


@pytest.mark.parametrize(("case", "answer", "error"), NOT_RETRIED, ids=[c[0] for c in NOT_RETRIED])
async def test_not_retried(
    stub: StubDynamo,
    case: str,
    answer: tuple[int, dict[str, str], dict[str, str]],
    error: type[DynamoDBError],
) -> None:
    status, headers, body = answer
    stub.answer(status, body, **headers)
    client = client_for(stub)
    try:
        with pytest.raises(error) as info:
            await client.call("GetItem", {})
        assert type(info.value) is error
        assert info.value.attempts == 1
        assert len(stub.received) == 1
    finally:
        await client.close()
