"""AWS Signature Version 4, as pure functions of credentials, request and time.

Only what a DynamoDB JSON request needs: a POST to the endpoint's path with a
body and a handful of headers. Tests check it against botocore's own signer; the
signing key is cached per day, which is most of the saving over botocore.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import NamedTuple, Protocol
from urllib.parse import quote

__all__ = [
    "Credentials",
    "FrozenCredentials",
    "RequestSigner",
    "authorization",
    "canonical_path",
    "signing_key",
]

ALGORITHM = "AWS4-HMAC-SHA256"


class FrozenCredentials(Protocol):
    """A snapshot of AWS credentials (botocore's ``ReadOnlyCredentials`` fits)."""

    @property
    def access_key(self) -> str:
        """The access key id."""
        ...

    @property
    def secret_key(self) -> str:
        """The secret access key."""
        ...

    @property
    def token(self) -> str | None:
        """The session token of temporary credentials, or None."""
        ...


class Credentials(NamedTuple):
    """Static credentials, for tests and benchmarks."""

    access_key: str
    secret_key: str
    token: str | None = None


def canonical_path(raw_path: str) -> str:
    """The canonical URI of a request path as sent (already percent-encoded).

    As SigV4 defines it for every service but S3: dot segments and empty
    segments removed, then each segment encoded again (``%`` becomes ``%25``).
    """
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, datestamp: str, region: str, service: str) -> bytes:
    """The day's signing key: an HMAC chain over date, region, service.

    Args:
        secret_key: the secret access key.
        datestamp: the UTC date as ``YYYYMMDD``.
        region: e.g. ``us-east-1``.
        service: e.g. ``dynamodb``.
    """
    key = _hmac(("AWS4" + secret_key).encode(), datestamp)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def authorization(
    *,
    access_key: str,
    key: bytes,
    scope: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload_sha256: str,
) -> str:
    """The ``Authorization`` header value for a request.

    Args:
        access_key: the access key id.
        key: the signing key from :func:`signing_key` for the scope's date.
        scope: ``YYYYMMDD/region/service/aws4_request``.
        method: the HTTP method.
        path: the canonical (already URI-encoded) path.
        query: the canonical query string, ``""`` for none.
        headers: every header to sign, names in lower case; must hold ``host``
            and ``x-amz-date``.
        payload_sha256: the hex SHA-256 of the body.
    """
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = (
        f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
    )
    string_to_sign = (
        f"{ALGORITHM}\n{headers['x-amz-date']}\n{scope}\n"
        f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    )
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )


class RequestSigner:
    """Signs POST requests to one host, caching the signing key per day and secret.

    Args:
        host: the ``Host`` header value (with the port when it is not the default).
        region: the region in the credential scope.
        service: the service in the credential scope.
        path: the request path as sent, percent-encoded (``/`` for most endpoints).
    """

    def __init__(self, host: str, region: str, service: str = "dynamodb", path: str = "/") -> None:
        self.host = host
        self.region = region
        self.service = service
        self.path = canonical_path(path)
        self._cached: tuple[str, str, bytes] = ("", "", b"")

    def _key(self, secret_key: str, datestamp: str) -> bytes:
        cached_secret, cached_date, key = self._cached
        if cached_secret != secret_key or cached_date != datestamp:
            key = signing_key(secret_key, datestamp, self.region, self.service)
            self._cached = (secret_key, datestamp, key)
        return key

    def sign(
        self,
        credentials: FrozenCredentials,
        amz_date: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        """Add ``host``, ``x-amz-date``, the token and ``Authorization`` to ``headers``.

        Args:
            credentials: the credentials to sign with.
            amz_date: the request time as ``YYYYMMDDTHHMMSSZ`` (UTC).
            headers: the headers to sign, lower-case names; updated in place.
            body: the request body.
        """
        datestamp = amz_date[:8]
        headers["host"] = self.host
        headers["x-amz-date"] = amz_date
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        headers["authorization"] = authorization(
            access_key=credentials.access_key,
            key=self._key(credentials.secret_key, datestamp),
            scope=f"{datestamp}/{self.region}/{self.service}/aws4_request",
            method="POST",
            path=self.path,
            query="",
            headers=headers,
            payload_sha256=hashlib.sha256(body).hexdigest(),
        )
