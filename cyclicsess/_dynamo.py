"""The lean async DynamoDB transport: one call is one signed JSON POST.

It knows nothing of sessions. Credentials, region and endpoint come from
aiobotocore/botocore once, when the client is opened (so every credential
source botocore knows works, with refresh); each call then costs a JSON dump,
a SigV4 signature with a cached key, one pooled aiohttp request, a CRC32
check and a JSON load. Throttling, 5xx, timeouts and connection errors are
retried with jittered exponential backoff inside a time budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from yarl import URL

from ._sigv4 import FrozenCredentials, RequestSigner
from .errors import ConfigurationError, DynamoDBError, StoreUnavailable, error_for

__all__ = ["CredentialSource", "DynamoClient", "RetryPolicy", "open_client"]

log = logging.getLogger("cyclicsess.dynamo")

#: An async callable returning current credentials (refreshed as needed).
CredentialSource = Callable[[], Awaitable[FrozenCredentials]]

_TARGET = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_BATCH_WRITE_LIMIT = 25
_SHORTEST_ATTEMPT_S = 0.05
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call may take, retries included.

    Attributes:
        budget: the most time one call may take in all, sleeps included.
        attempt_timeout: the most time one HTTP request may take.
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


def _host_header(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        host = f"{host}:{url.port}"
    return host


class _AmzDate:
    """``YYYYMMDDTHHMMSSZ`` for now, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._text


class DynamoClient:
    """A pooled, signed, retrying DynamoDB JSON client.

    Args:
        endpoint_url: e.g. ``https://dynamodb.eu-west-1.amazonaws.com``.
        region: the region requests are signed for.
        credentials: an async callable returning current credentials.
        retry: time budget and backoff.
        max_connections: size of the connection pool.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        credentials: CredentialSource,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
    ) -> None:
        url = URL(endpoint_url)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ConfigurationError(f"endpoint_url must be an http(s) URL, not {endpoint_url!r}")
        self.endpoint_url = str(url)
        self.region = region
        self.retry = retry or RetryPolicy()
        self._credentials = credentials
        self._signer = RequestSigner(_host_header(url), region)
        self._amz_date = _AmzDate()
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None
        self.requests_sent = 0

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
                headers={"user-agent": "cyclicsess", "accept-encoding": "identity"},
            )
        return self._http

    async def close(self) -> None:
        """Close the connection pool; the client reopens one if used again."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send one DynamoDB operation and return its decoded answer.

        Args:
            operation: the API name, e.g. ``"GetItem"``.
            payload: the request as DynamoDB's JSON API defines it.

        Raises:
            DynamoDBError: a subclass chosen by the error DynamoDB answered.
            StoreUnavailable: retryable failures outlasted the budget.
        """
        body = _dumps(payload).encode()
        target = _TARGET + operation
        policy = self.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.budget.total_seconds()
        attempt_timeout = policy.attempt_timeout.total_seconds()
        attempts = 0
        while True:
            attempts += 1
            timeout = min(attempt_timeout, deadline - loop.time())
            try:
                return await self._send(target, body, timeout)
            except _RetryableFailure as failure:
                cause = failure.__cause__
            except DynamoDBError as error:
                error.attempts = attempts
                raise
            ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempts - 1))
            delay = random.uniform(0, ceiling.total_seconds())  # noqa: S311 - jitter, not crypto
            # Give up rather than start an attempt with no time left to answer.
            if deadline - (loop.time() + delay) < min(attempt_timeout, _SHORTEST_ATTEMPT_S):
                raise StoreUnavailable(
                    f"{operation} failed after {attempts} attempts in "
                    f"{policy.budget.total_seconds():g}s: {cause!r}",
                    attempts=attempts,
                ) from cause
            log.debug("retrying %s after %r (attempt %d)", operation, cause, attempts)
            await asyncio.sleep(delay)

    async def _send(self, target: str, body: bytes, timeout: float) -> dict[str, Any]:
        try:
            credentials = await self._credentials()
        except Exception as exc:  # a failed refresh (IMDS, STS, SSO) may pass: retry it
            raise _RetryableFailure from exc
        headers = {"content-type": _CONTENT_TYPE, "x-amz-target": target}
        self._signer.sign(credentials, self._amz_date(), headers, body)
        self.requests_sent += 1
        try:
            async with self._session().post(
                self.endpoint_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                crc = response.headers.get("x-amz-crc32")
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _RetryableFailure from exc
        if crc is not None and crc.isdigit() and zlib.crc32(raw) != int(crc):
            raise _RetryableFailure from ValueError("response failed its CRC32 check")
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            if status == 200 or status >= 500:
                raise _RetryableFailure from exc
            answer = {"message": raw[:200].decode("utf-8", "replace")}
        if not isinstance(answer, dict):
            raise _RetryableFailure from ValueError("response is not a JSON object")
        if status == 200:
            return answer
        error = error_for(status, answer)
        if error.retryable:
            raise _RetryableFailure from error
        raise error

    async def scan(self, payload: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield every item a ``Scan`` returns, following ``LastEvaluatedKey``."""
        request = dict(payload)
        while True:
            page = await self.call("Scan", request)
            for item in page.get("Items", ()):
                yield item
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    async def batch_write(self, table: str, requests: Sequence[Mapping[str, Any]]) -> None:
        """Apply ``PutRequest``/``DeleteRequest`` entries in batches of 25.

        Unprocessed entries are resent with backoff inside the retry budget.

        Raises:
            StoreUnavailable: some entries were still unprocessed at the end.
        """
        for start in range(0, len(requests), _BATCH_WRITE_LIMIT):
            pending = list(requests[start : start + _BATCH_WRITE_LIMIT])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.retry.budget.total_seconds()
            attempts = 0
            while pending:
                attempts += 1
                answer = await self.call("BatchWriteItem", {"RequestItems": {table: pending}})
                pending = list(answer.get("UnprocessedItems", {}).get(table, ()))
                if not pending:
                    break
                delay = random.uniform(0, 0.05 * 2**attempts)  # noqa: S311 - jitter
                if loop.time() + delay >= deadline:
                    raise StoreUnavailable(
                        f"BatchWriteItem left {len(pending)} entries unprocessed",
                        attempts=attempts,
                    )
                await asyncio.sleep(delay)


async def open_client(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    retry: RetryPolicy | None = None,
    max_connections: int = 64,
) -> DynamoClient:
    """A client whose credentials, region and endpoint botocore resolves.

    Credentials come from botocore's whole chain (environment incl.
    ``AWS_SESSION_TOKEN``, profiles, SSO, web identity, container and
    instance metadata) and are refreshed by it. Without ``endpoint_url``,
    botocore picks it (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL``,
    the profile, or the regional endpoint).

    Args:
        region: overrides ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile.
        endpoint_url: e.g. ``http://127.0.0.1:8000`` for a local server.
        profile: a profile name from the AWS config files.
        retry: time budget and backoff.
        max_connections: size of the connection pool.

    Raises:
        ConfigurationError: no region or no credentials could be found.
    """
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError

    session = get_session()
    try:
        if profile is not None:
            session.set_config_variable("profile", profile)
        region = region or session.get_config_variable("region")
        if endpoint_url is None:
            if region is None:
                raise ConfigurationError(
                    "no AWS region: pass region= or set AWS_REGION / AWS_DEFAULT_REGION"
                )
            async with session.create_client("dynamodb", region_name=region) as client:
                endpoint_url = client.meta.endpoint_url
                region = client.meta.region_name
        source = await session.get_credentials()
    except BotoCoreError as exc:
        raise ConfigurationError(f"could not configure AWS access: {exc}") from exc
    if source is None:
        raise ConfigurationError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where a role provides them"
        )
    assert endpoint_url is not None  # noqa: S101 - narrowed above for the type checker
    return DynamoClient(
        endpoint_url=endpoint_url,
        # a local server does not care about the region, but the signature needs one
        region=region or "us-east-1",
        credentials=source.get_frozen_credentials,
        retry=retry,
        max_connections=max_connections,
    )
