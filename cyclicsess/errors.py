"""The exceptions cyclicsess raises; catch :class:`CyclicSessError` for all of them.

::

    CyclicSessError
    ├── ConfigurationError        bad options, no region, no credentials
    ├── SessionError              about one session
    │   ├── SessionNotFound       unknown, destroyed or expired: nothing was written
    │   ├── SessionConflict       another writer saved a newer version first
    │   └── SessionTooLarge       the item would exceed DynamoDB's 400 KB limit
    ├── CodecError
    │   ├── EncodeError           a value the codec cannot store (names key and type)
    │   └── DecodeError           stored bytes that are not a session
    ├── StoreUnavailable          DynamoDB could not be reached in the time budget
│   ├── SessionUnavailable    a request's session could not be read (answer 503)
│   └── SessionMoveIncomplete a regenerate ended the old id, the new one may be missing
    └── DynamoDBError             an error DynamoDB answered (``code``, ``status``)
        ├── ConditionalCheckFailed
        ├── ValidationError
        ├── ResourceNotFound
        ├── ResourceInUse
        ├── Throttled             throttling codes and HTTP 429: retried
        ├── ReplicatedWriteConflict  a write raced one in another Region: retried
        ├── AccessDenied
        └── ServerError           HTTP 5xx and transient errors: retried

Botocore's and aiohttp's exceptions never reach the caller unwrapped: they are
the ``__cause__`` of one of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._item import SessionRecord

__all__ = [
    "AccessDenied",
    "CodecError",
    "ConditionalCheckFailed",
    "ConfigurationError",
    "CyclicSessError",
    "DecodeError",
    "DynamoDBError",
    "EncodeError",
    "ReplicatedWriteConflict",
    "ResourceInUse",
    "ResourceNotFound",
    "ServerError",
    "SessionConflict",
    "SessionError",
    "SessionMoveIncomplete",
    "SessionNotFound",
    "SessionTooLarge",
    "SessionUnavailable",
    "StoreUnavailable",
    "Throttled",
    "ValidationError",
    "error_code",
    "error_for",
]


class CyclicSessError(Exception):
    """The base of every error this package raises."""


class ConfigurationError(CyclicSessError):
    """The store was set up wrongly: a bad option, no region, no credentials."""


class SessionError(CyclicSessError):
    """An operation on one session could not be done."""


class SessionNotFound(SessionError):
    """The session is unknown, destroyed or expired; nothing was written."""


class SessionConflict(SessionError):
    """Another writer saved the session first; reload it and apply the change again.

    Attributes:
        expected_version: the version the caller read.
        current_version: the version now stored.
        current: the session as stored (a ``SessionRecord``), when the failed
            write could tell; merge from it without reading again.
    """

    def __init__(
        self,
        message: str,
        *,
        expected_version: int,
        current_version: int,
        current: SessionRecord | None = None,
    ) -> None:
        super().__init__(message)
        self.expected_version = expected_version
        self.current_version = current_version
        self.current = current


class SessionTooLarge(SessionError):
    """The session would make an item larger than DynamoDB allows.

    Attributes:
        size_bytes: the item's size as DynamoDB counts it.
        limit_bytes: the limit (409,600 bytes).
    """

    def __init__(self, message: str, *, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(message)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class CodecError(CyclicSessError):
    """Session data could not be encoded or decoded."""


class EncodeError(CodecError, TypeError):
    """A value in the session cannot be stored; the message names its key and type."""


class DecodeError(CodecError, ValueError):
    """Stored bytes do not decode to a session dict."""


class StoreUnavailable(CyclicSessError):
    """DynamoDB did not answer usefully within the retry budget.

    Raised after throttling, 5xx answers, timeouts or connection errors outlast
    the budget; the last of them is the ``__cause__``.

    Attributes:
        attempts: how many requests were sent.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class SessionUnavailable(StoreUnavailable):
    """A request's session could not be read, and the app answers 503 (``on_store_error="fail"``).

    The store's failure is the ``__cause__``.
    """


class SessionMoveIncomplete(StoreUnavailable):
    """``regenerate`` ended the old session, but writing the new one failed or was not confirmed.

    The session may live on under the new id (its write applied, its answer
    lost) or be gone; it is never left under the old id. Hand the new id to
    the client anyway: it is the only way to the session if it was written.

    Attributes:
        new_id: the id the session was moved to.
    """

    def __init__(self, message: str, *, attempts: int, new_id: str) -> None:
        super().__init__(message, attempts=attempts)
        self.new_id = new_id


class DynamoDBError(CyclicSessError):
    """An error answered by DynamoDB.

    Attributes:
        code: the error's short name, e.g. ``ValidationException``.
        status: the HTTP status.
        body: the decoded JSON answer.
        attempts: how many requests the call sent (more than 1 after retries).
    """

    retryable = False

    def __init__(self, code: str, message: str, *, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.status = status
        self.body = body
        self.attempts = 1


class ConditionalCheckFailed(DynamoDBError):
    """A condition expression was false; ``item`` is the old item when the server sent it."""

    @property
    def item(self) -> dict[str, Any] | None:
        """The item that failed the condition (``ALL_OLD``), if the server returned it."""
        item = self.body.get("Item")
        return item if isinstance(item, dict) else None


class ValidationError(DynamoDBError):
    """DynamoDB rejected the request as malformed."""


class ResourceNotFound(DynamoDBError):
    """The table does not exist (or is not ACTIVE yet)."""


class ResourceInUse(DynamoDBError):
    """The table is being created, updated or deleted."""


class Throttled(DynamoDBError):
    """DynamoDB asked the client to slow down; retried until the budget runs out."""

    retryable = True


class ReplicatedWriteConflict(DynamoDBError):
    """A write met a concurrent one in another Region (multi-Region strong consistency).

    Retried until the budget runs out, as botocore retries it.
    """

    retryable = True


class AccessDenied(DynamoDBError):
    """The credentials are missing, wrong or not allowed to do this."""


class ServerError(DynamoDBError):
    """DynamoDB failed on its side (HTTP 5xx); retried until the budget runs out."""

    retryable = True


# The codes botocore retries for DynamoDB (botocore/data/_retry.json and the
# throttled and transient codes of botocore/retries/standard.py).
_THROTTLING_CODES = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "EC2ThrottledException",
)
_TRANSIENT_CODES = (
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
)
_ERRORS_BY_CODE: dict[str, type[DynamoDBError]] = {
    "ConditionalCheckFailedException": ConditionalCheckFailed,
    "ValidationException": ValidationError,
    "SerializationException": ValidationError,
    "ResourceNotFoundException": ResourceNotFound,
    "ResourceInUseException": ResourceInUse,
    "ReplicatedWriteConflictException": ReplicatedWriteConflict,
    "AccessDeniedException": AccessDenied,
    "UnrecognizedClientException": AccessDenied,
    "MissingAuthenticationTokenException": AccessDenied,
    "InvalidSignatureException": AccessDenied,
    "ExpiredTokenException": AccessDenied,
    **dict.fromkeys(_THROTTLING_CODES, Throttled),
    **dict.fromkeys(_TRANSIENT_CODES, ServerError),
}
#: Statuses that say "slow down" whatever the body: 429 Too Many Requests, 509.
_THROTTLING_STATUSES = (429, 509)


def error_code(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> str:
    """The error's short name, parsed as botocore parses it.

    From ``__type`` (else the ``x-amzn-ErrorType`` header): the part before
    the first ``:``, then after the last ``#``;
    ``"com.amazonaws.dynamodb.v20120810#ThrottlingException"`` and
    ``"ValidationException:http://internal.amazon.com/..."`` give
    ``ThrottlingException`` and ``ValidationException``. ``HTTP<status>``
    when neither is there.
    """
    raw = body.get("__type")
    if not isinstance(raw, str) or not raw:
        raw = (headers or {}).get("x-amzn-ErrorType", "")
    return raw.partition(":")[0].rpartition("#")[2] or f"HTTP{status}"


def error_for(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> DynamoDBError:
    """Build the exception for a DynamoDB error answer.

    Args:
        status: the HTTP status of the answer.
        body: its decoded JSON.
        headers: its headers (case-insensitive lookup), for ``x-amzn-ErrorType``.
    """
    code = error_code(status, body, headers)
    message = str(body.get("message") or body.get("Message") or "")
    cls = _ERRORS_BY_CODE.get(code)
    if cls is None:
        if status in _THROTTLING_STATUSES:
            cls = Throttled
        else:
            cls = ServerError if status >= 500 else DynamoDBError
    return cls(code, message, status=status, body=body)
