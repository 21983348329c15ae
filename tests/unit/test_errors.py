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


@pytest.mark.parametrize(
    ("status", "body", "headers", "code"),
    [
        (
            400,
            {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"},
            {},
            "ThrottlingException",
        ),
        (
            400,
            {"__type": "ValidationException:http://internal.amazon.com/coral/com.amazon.coral/"},
            {},
            "ValidationException",
        ),
        (400, {"__type": "com.amazon.coral#A:http://x#y"}, {}, "A"),
        (
            400,
            {},
            {"x-amzn-ErrorType": "ThrottlingException:http://internal/"},
            "ThrottlingException",
        ),
        (
            400,
            {"__type": ""},
            {"x-amzn-ErrorType": "AccessDeniedException"},
            "AccessDeniedException",
        ),
        (502, {}, {}, "HTTP502"),
    ],
)
def test_error_code_is_parsed_as_botocore_parses_it(
    status: int, body: dict[str, str], headers: dict[str, str], code: str
) -> None:
    assert errors.error_code(status, body, headers) == code
    assert errors.error_for(status, body, headers).code == code


@pytest.mark.parametrize(
    ("status", "type_", "cls"),
    [
        (
            409,
            "com.amazonaws.dynamodb.v20120810#ReplicatedWriteConflictException",
            errors.ReplicatedWriteConflict,
        ),
        (429, "", errors.Throttled),
        (400, "com.amazonaws.dynamodb.v20120810#TransactionInProgressException", errors.Throttled),
        (400, "com.amazon.coral.service#RequestTimeoutException", errors.ServerError),
        (509, "", errors.Throttled),
        (504, "", errors.ServerError),
    ],
)
def test_what_botocore_retries_is_retryable(
    status: int, type_: str, cls: type[errors.DynamoDBError]
) -> None:
    error = errors.error_for(status, {"__type": type_} if type_ else {})
    assert type(error) is cls
    assert error.retryable
