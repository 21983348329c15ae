"""The lean async DynamoDB transport: one call is one signed JSON POST.

It knows nothing of sessions. Each call costs a JSON dump, a SigV4 signature
with a cached key, one pooled aiohttp request, a CRC32 check and a JSON load.
What botocore retries for DynamoDB (throttling, 5xx, write conflicts of
global tables, timeouts, connection errors, a bad CRC32) is retried with
full-jitter exponential backoff inside the call's time budget. Waiting for a
free connection counts against that budget but not against the attempt's
timeout, so a request is never abandoned and sent again because it queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from yarl import URL

from ._credentials import CredentialCache, CredentialSource, CredentialsTimeout
from ._pool import LoopPools, Pool
from ._sigv4 import RequestSigner
from ._wire import AmzDate, describe_failure, host_header
from .errors import (
    ConditionalCheckFailed,
    ConfigurationError,
    DynamoDBError,
    ResourceNotFound,
    StoreUnavailable,
    error_for,
)

__all__ = ["CredentialSource", "DynamoClient", "RetryPolicy"]

log = logging.getLogger("cyclicsess.dynamo")

_TARGET = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SHORTEST_ATTEMPT_S = 0.05
#: The operations whose consumed capacity a measuring client asks for.
_MEASURED_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem"})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
#: Hosts known to honour ReturnValuesOnConditionCheckFailure (DynamoDB itself).
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call may take, retries included.

    Attributes:
        budget: the most time one call may take in all: waiting for a free
            connection, every attempt and the sleeps between them.
        attempt_timeout: the most time one request may take once it has a
            connection (connecting, sending, answering); a request that
            takes longer is abandoned and retried.
        base_delay: the first backoff ceiling; it doubles per retry (full jitter).
        max_delay: the largest backoff ceiling.
    """

    budget: timedelta = timedelta(seconds=3)
    attempt_timeout: timedelta = timedelta(seconds=1)
    base_delay: timedelta = timedelta(milliseconds=25)
    max_delay: timedelta = timedelta(milliseconds=500)

    def __post_init__(self) -> None:
        if self.budget <= timedelta(0) or self.attempt_timeout <= timedelta(0):
            raise ConfigurationError("retry budget and attempt timeout must be positive")


class _RetryableFailure(Exception):
    """An attempt failed in a way worth retrying; ``__cause__`` says how."""


class _OutOfTime(Exception):
    """The call's budget ran out before an attempt could be made; the message (if any) says why."""


def _named_table(error: ResourceNotFound, payload: Mapping[str, Any]) -> ResourceNotFound:
    """The error with the missing table's name and how to create it."""
    table = payload.get("TableName")
    if not isinstance(table, str):
        return error
    named = ResourceNotFound(
        error.code,
        f"table {table!r} does not exist (or is not ACTIVE yet); create it with "
        f"`python -m cyclicsess ensure-table {table}` or `await store.ensure_table()`",
        status=error.status,
        body=error.body,
    )
    named.attempts = error.attempts
    return named


def _endpoint(endpoint_url: str) -> URL:
    url = URL(endpoint_url)
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ConfigurationError(f"endpoint_url must be an http(s) URL, not {endpoint_url!r}")
    if url.raw_query_string or url.raw_fragment or url.raw_user:
        raise ConfigurationError(
            f"endpoint_url must not carry a query, fragment or user: {endpoint_url!r}"
        )
    # "http://host" is sent as "/" (a proxy gets "POST http://host/", not "http://host")
    return url.with_path(url.raw_path, encoded=True)


class DynamoClient:
    """A pooled, signed, retrying DynamoDB JSON client.

    Args:
        endpoint_url: e.g. ``https://dynamodb.eu-west-1.amazonaws.com``; a
            path (behind a gateway) is kept and signed.
        region: the region requests are signed for.
        credentials: botocore's credentials object, or an async callable
            returning frozen credentials (awaited on every call).
        retry: time budget and backoff.
        max_connections: size of the connection pool (per event loop).
        proxy: a proxy URL, or None.
        proxy_headers: headers sent to the proxy.
        ssl_context: verifies the endpoint's TLS certificate (default: the system's CAs).

    Attributes:
        requests_sent: how many HTTP requests this client has sent.
        measure_capacity: set it to ask DynamoDB what each item operation
            consumed (``ReturnConsumedCapacity``); off by default.
        capacity_used: the capacity units the answers reported while
            measuring, by operation (e.g. ``{"UpdateItem": 3.0}``).
        returns_old_items: whether the server returns the item a condition
            failed on when asked (``ReturnValuesOnConditionCheckFailure``);
            True for DynamoDB itself, learnt from the first answer elsewhere.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        credentials: Any,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        proxy: str | None = None,
        proxy_headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = _endpoint(endpoint_url)
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.endpoint_url = str(url)
        self.region = region
        self.retry = retry or RetryPolicy()
        self.proxy = proxy
        # aiohttp sends proxy headers with a CONNECT (HTTPS endpoints) only; a
        # plain HTTP request through a proxy carries them itself (unsigned).
        tunnelled = url.scheme == "https"
        self._proxy_headers = dict(proxy_headers or {}) if tunnelled else {}
        self._request_proxy_headers = (
            {} if tunnelled or proxy is None else dict(proxy_headers or {})
        )
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._credentials = CredentialCache(credentials)
        self._signer = RequestSigner(host_header(url), region, path=url.raw_path)
        self._amz_date = AmzDate()
        self._max_connections = max_connections
        self._pools = LoopPools(self._open_http, max_connections)
        self.requests_sent = 0
        self.measure_capacity = False
        self.capacity_used: dict[str, float] = {}
        host = url.raw_host or ""
        self.returns_old_items: bool | None = True if host.endswith(_AWS_HOST_SUFFIXES) else None

    def _open_http(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            # aiohttp's own DNS cache lifetime (10 s): DynamoDB's addresses rotate.
            connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl),
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
            headers={"user-agent": "cyclicsess", "accept-encoding": "identity"},
        )

    async def close(self) -> None:
        """Close the running loop's connection pool; the client reopens one if used again."""
        await self._pools.close()

    async def call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send one DynamoDB operation and return its decoded answer.

        Args:
            operation: the API name, e.g. ``"GetItem"``.
            payload: the request as DynamoDB's JSON API defines it.

        Raises:
            DynamoDBError: a subclass chosen by the error DynamoDB answered.
            StoreUnavailable: retryable failures outlasted the budget.
        """
        measured = self.measure_capacity and operation in _MEASURED_OPERATIONS
        if measured:
            payload = {**payload, "ReturnConsumedCapacity": "TOTAL"}
        body = _dumps(payload).encode()
        target = _TARGET + operation
        policy = self.retry
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + policy.budget.total_seconds()
        base_delay_s = policy.base_delay.total_seconds()
        max_delay_s = policy.max_delay.total_seconds()
        attempts = 0
        cause: BaseException | None = None
        while True:
            attempts += 1
            try:
                answer = await self._attempt(target, body, deadline)
                if measured:
                    self._count_capacity(operation, answer)
                return answer
            except _RetryableFailure as failure:
                cause = failure.__cause__
            except _OutOfTime as exc:
                reason = str(exc) or describe_failure(cause)
                raise self._unavailable(operation, attempts - 1, started, reason) from cause
            except ResourceNotFound as error:
                raise _named_table(error, payload) from error
            except DynamoDBError as error:
                error.attempts = attempts
                if isinstance(error, ConditionalCheckFailed) and error.item is not None:
                    self.returns_old_items = True
                raise
            ceiling = min(max_delay_s, base_delay_s * 2.0 ** min(attempts - 1, 64))
            delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto
            shortest = min(policy.attempt_timeout.total_seconds(), _SHORTEST_ATTEMPT_S)
            # Give up rather than start an attempt with no time left to answer.
            if deadline - (loop.time() + delay) < shortest:
                reason = describe_failure(cause)
                raise self._unavailable(operation, attempts, started, reason) from cause
            log.debug("retrying %s after %r (attempt %d)", operation, cause, attempts)
            await asyncio.sleep(delay)

    def _count_capacity(self, operation: str, answer: Mapping[str, Any]) -> None:
        used = answer.get("ConsumedCapacity")
        units = used.get("CapacityUnits") if isinstance(used, dict) else None
        if isinstance(units, (int, float)):
            self.capacity_used[operation] = self.capacity_used.get(operation, 0.0) + units

    @property
    def _pool_exhausted(self) -> str:
        return (
            f"no connection of the pool ({self._max_connections}) came free within the "
            "budget: too many calls in flight (raise max_connections, or lower the load)"
        )

    def _unavailable(
        self, operation: str, attempts: int, started: float, reason: str
    ) -> StoreUnavailable:
        elapsed = asyncio.get_running_loop().time() - started
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return StoreUnavailable(
            f"DynamoDB {operation} at {self.endpoint_url} failed ({tries} in {elapsed:.1f}s): "
            f"{reason}",
            attempts=attempts,
        )

    async def _attempt(self, target: str, body: bytes, deadline: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            credentials = await self._credentials.get(deadline - loop.time())
        except CredentialsTimeout as exc:
            raise _OutOfTime(str(exc)) from None
        except Exception as exc:  # a failed refresh (IMDS, STS, SSO) may pass: retry it
            raise _RetryableFailure from exc
        headers = {"content-type": _CONTENT_TYPE, "x-amz-target": target}
        self._signer.sign(credentials, self._amz_date(), headers, body)
        if self._request_proxy_headers:
            headers.update(self._request_proxy_headers)
        pool = self._pools.current() or await self._pools.open()
        slots = pool.slots
        queued = slots.locked()
        if queued:  # every connection busy: queue, within the budget
            try:
                await asyncio.wait_for(slots.acquire(), deadline - loop.time())
            except asyncio.TimeoutError:
                raise _OutOfTime(self._pool_exhausted) from None
        else:
            await slots.acquire()
        try:
            remaining = deadline - loop.time()
            if queued and remaining < _SHORTEST_ATTEMPT_S:
                raise _OutOfTime(self._pool_exhausted)  # a connection, but no time to use it
            if remaining <= 0:
                raise _OutOfTime("")  # the last failure says why
            timeout = min(self.retry.attempt_timeout.total_seconds(), remaining)
            return await self._post(pool, headers, body, timeout)
        finally:
            slots.release()

    async def _post(
        self, pool: Pool, headers: dict[str, str], body: bytes, timeout: float
    ) -> dict[str, Any]:
        self.requests_sent += 1
        try:
            async with pool.http.post(
                self.endpoint_url,
                data=body,
                headers=headers,
                proxy=self.proxy,
                proxy_headers=self._proxy_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                answer_headers = response.headers
        except aiohttp.ClientConnectorCertificateError as exc:
            raise StoreUnavailable(
                f"the TLS certificate of {self.endpoint_url} is not trusted "
                f"({exc.certificate_error}): set AWS_CA_BUNDLE (or the profile's "
                "ca_bundle) to the CA that signed it",
                attempts=1,
            ) from exc
        except asyncio.TimeoutError:
            raise _RetryableFailure from asyncio.TimeoutError(f"no answer within {timeout:.2g}s")
        except (aiohttp.ClientError, OSError) as exc:
            raise _RetryableFailure from exc
        crc = answer_headers.get("x-amz-crc32")
        if crc is not None and crc.isdigit() and zlib.crc32(raw) != int(crc):
            raise _RetryableFailure from ValueError("the answer failed its CRC32 check")
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            if status == 200 or status >= 500:
                raise _RetryableFailure from exc
            answer = {"message": raw[:200].decode("utf-8", "replace")}
        if not isinstance(answer, dict):
            raise _RetryableFailure from ValueError("the answer is not a JSON object")
        if status == 200:
            return answer
        error = error_for(status, answer, answer_headers)
        if error.retryable:
            raise _RetryableFailure from error
        raise error
