"""Where and how to reach DynamoDB, resolved once from botocore's configuration.

What a boto3 client would use, and a little more:

- region: ``region=``, else ``AWS_REGION`` (which botocore does not read, but
  the AWS CLI v2, the other SDKs and Lambda set), else botocore's
  ``AWS_DEFAULT_REGION`` or the profile's ``region``;
- endpoint: ``endpoint_url=``, else botocore's (``AWS_ENDPOINT_URL_DYNAMODB``,
  ``AWS_ENDPOINT_URL``, the profile, or the regional endpoint);
- credentials: botocore's whole chain, refreshable ones included;
- proxy: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` for the endpoint, read
  by botocore's own functions, credentials in the proxy URL included;
- CA bundle: ``AWS_CA_BUNDLE`` or the profile's ``ca_bundle``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from ._dynamo import DynamoClient, RetryPolicy
from .errors import ConfigurationError, StoreUnavailable

__all__ = ["Connection", "open_client", "resolve"]

#: A region to sign with for a local server, which does not check it.
_LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class Connection:
    """The resolved settings of a DynamoDB client.

    Attributes:
        endpoint_url: the URL requests are posted to.
        region: the region they are signed for.
        credentials: botocore's credentials object (refreshable or static).
        proxy: the proxy URL for the endpoint (without credentials), or None.
        proxy_headers: headers for the proxy (``Proxy-Authorization``).
        ca_bundle: a CA bundle file to verify TLS with, or None for the system's.
    """

    endpoint_url: str
    region: str
    credentials: Any = field(repr=False)
    proxy: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict, repr=False)
    ca_bundle: str | None = None


def _proxy_for(endpoint_url: str) -> tuple[str | None, dict[str, str]]:
    """The proxy botocore would use for ``endpoint_url``, from the environment."""
    from botocore.httpsession import ProxyConfiguration
    from botocore.utils import get_environ_proxies

    config = ProxyConfiguration(proxies=get_environ_proxies(endpoint_url))
    proxy: str | None = config.proxy_url_for(endpoint_url)
    if not proxy:
        return None, {}
    # The credentials travel in Proxy-Authorization only, never in a URL kept around.
    without_credentials = str(URL(proxy).with_user(None))
    return without_credentials, dict(config.proxy_headers_for(proxy))


async def resolve(
    *, region: str | None = None, endpoint_url: str | None = None, profile: str | None = None
) -> Connection:
    """Resolve region, endpoint, credentials, proxy and CA bundle, as botocore would.

    Raises:
        ConfigurationError: no region or no credentials could be found.
    """
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError

    session = get_session()
    try:
        if profile is not None:
            session.set_config_variable("profile", profile)
        region = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
        if endpoint_url is None:
            if not region:
                raise ConfigurationError(
                    "no AWS region: pass region= or set AWS_REGION / AWS_DEFAULT_REGION"
                )
            async with session.create_client("dynamodb", region_name=region) as client:
                endpoint_url = str(client.meta.endpoint_url)
                region = str(client.meta.region_name)
        credentials = await session.get_credentials()
        ca_bundle = session.get_config_variable("ca_bundle")
    except BotoCoreError as exc:
        raise ConfigurationError(f"could not configure AWS access: {exc}") from exc
    if credentials is None:
        raise ConfigurationError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where a role provides them"
        )
    proxy, proxy_headers = _proxy_for(endpoint_url)
    return Connection(
        endpoint_url=endpoint_url,
        region=region or _LOCAL_REGION,
        credentials=credentials,
        proxy=proxy,
        proxy_headers=proxy_headers,
        ca_bundle=ca_bundle or None,
    )


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    if ca_bundle is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"the CA bundle {ca_bundle!r} (AWS_CA_BUNDLE or the profile's ca_bundle) "
            f"cannot be read: {exc}"
        ) from exc


async def open_client(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    retry: RetryPolicy | None = None,
    max_connections: int = 64,
) -> DynamoClient:
    """A client reaching DynamoDB as botocore's configuration says (see the module).

    Resolving waits at most the retry budget: a credentials endpoint that does
    not answer is :class:`~cyclicsess.errors.StoreUnavailable`, not a hang.

    Args:
        region: overrides ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile.
        endpoint_url: e.g. ``http://127.0.0.1:8000`` for a local server.
        profile: a profile name from the AWS config files.
        retry: time budget and backoff.
        max_connections: size of the connection pool.

    Raises:
        ConfigurationError: no region, no credentials, a bad endpoint or CA bundle.
        StoreUnavailable: the resolution took longer than the budget.
    """
    retry = retry or RetryPolicy()
    budget_s = retry.budget.total_seconds()
    try:
        connection = await asyncio.wait_for(
            resolve(region=region, endpoint_url=endpoint_url, profile=profile), budget_s
        )
    except asyncio.TimeoutError:
        raise StoreUnavailable(
            f"AWS credentials and endpoint were not resolved within {budget_s:g}s "
            "(a slow credentials endpoint?)",
            attempts=0,
        ) from None
    return DynamoClient(
        endpoint_url=connection.endpoint_url,
        region=connection.region,
        credentials=connection.credentials,
        retry=retry,
        max_connections=max_connections,
        proxy=connection.proxy,
        proxy_headers=connection.proxy_headers,
        ssl_context=_ssl_context(connection.ca_bundle),
    )
