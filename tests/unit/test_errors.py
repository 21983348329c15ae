"""Error answers map to the documented exception classes."""

from __future__ import annotations

import pytest

from cyclicsess import errors


@pytest.mark.parametrize(
    ("status", "type_", "cls", "retryable"),
    [
        (
            400,
            "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            errors.ConditionalCheckFailed,
            False,
        ),
        (400, "com.amazon.coral.validate#ValidationException", errors.ValidationError, False),
        (
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            errors.Throttled,
            True,
        ),
        (400, "com.amazon.coral.availability#ThrottlingException", errors.Throttled, True),
        (400, "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded", errors.Throttled, True),
        (
            400,
            "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            errors.ResourceNotFound,
            False,
        ),
        (400, "com.amazon.coral.service#UnrecognizedClientException", errors.AccessDenied, False),
        (500, "com.amazon.coral.service#InternalFailure", errors.ServerError, True),
        (503, "", errors.ServerError, True),
        (400, "com.example#SomethingNew", errors.DynamoDBError, False),
    ],
)
def test_error_for(
    status: int, type_: str, cls: type[errors.DynamoDBError], retryable: bool
) -> None:
    error = errors.error_for(status, {"__type": type_, "message": "why"})
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status == status
    assert isinstance(error, errors.CyclicSessError)


def test_unknown_error_keeps_status_and_body() -> None:
    error = errors.error_for(418, {"Message": "teapot"})
    assert error.code == "HTTP418"
    assert "teapot" in str(error)
    assert error.body == {"Message": "teapot"}


def test_conditional_check_failed_exposes_the_old_item() -> None:
    item = {"id": {"S": "k"}}
    error = errors.error_for(400, {"__type": "x#ConditionalCheckFailedException", "Item": item})
    assert isinstance(error, errors.ConditionalCheckFailed)
    assert error.item == item
    assert errors.error_for(400, {"__type": "x#ConditionalCheckFailedException"}).item is None
