"""Corporate networks on loopback: forward proxies, a TLS endpoint with its own CA, a gateway path.

Each condition is played by a server of the test's own on 127.0.0.1 in front
of the real DynamoDB-compatible server; the store is configured only through
what boto3 users set: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY``,
``AWS_CA_BUNDLE`` or a profile's ``ca_bundle``, an endpoint URL with a path.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from cyclicsess import AccessDenied, RetryPolicy, SessionStore, StoreUnavailable
from tests.faultproxy import FaultProxy
from tests.forwardproxy import ForwardProxy

StoreFactory = Callable[..., Awaitable[SessionStore]]

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="cyclicsess test CA")


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def tls_endpoint(server: Any, ca: trustme.CA) -> AsyncIterator[FaultProxy]:
    """The server behind HTTPS with a certificate of the test's own CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    async with FaultProxy(server.url, ssl_context=context) as proxy:
        yield proxy


async def round_trip(store: SessionStore) -> None:
    sid = await store.create({"user": "ada"})
    record = await store.get(sid)
    assert record is not None
    assert record.data == {"user": "ada"}


# -- proxies -----------------------------------------------------------------------------


async def test_http_proxy_carries_every_request(
    make_store: StoreFactory, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        store = await make_store()
        await round_trip(store)
    assert proxy.requests.count(f"POST {server.url}/") >= 4  # describe, create, put, get


async def test_no_proxy_bypasses_the_proxy(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        store = await make_store()
        await round_trip(store)
    assert proxy.requests == []


async def test_proxy_credentials_in_the_url_are_sent_once(
    make_store: StoreFactory, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "Basic " + base64.b64encode(b"corp\\ada:p@ss word").decode()
    async with ForwardProxy(require_auth=expected) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.replace("//", "//corp%5Cada:p%40ss%20word@"))
        store = await make_store()
        await round_trip(store)
    assert set(proxy.authorizations) == {expected}


async def test_https_through_a_proxy_tunnel_with_the_corporate_ca(
    make_store: StoreFactory,
    tls_endpoint: FaultProxy,
    ca_bundle: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = "Basic " + base64.b64encode(b"ada:secret").decode()
    async with ForwardProxy(require_auth=expected) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("//", "//ada:secret@"))
        monkeypatch.setenv("AWS_CA_BUNDLE", ca_bundle)
        store = await make_store(endpoint_url=tls_endpoint.url)
        await round_trip(store)
    host_port = tls_endpoint.url.removeprefix("https://")
    assert set(proxy.requests) == {f"CONNECT {host_port}"}
    assert set(proxy.authorizations) == {expected}
    assert tls_endpoint.count("GetItem") == 1


# -- certificates ------------------------------------------------------------------------


async def test_an_untrusted_certificate_fails_at_once_and_says_what_to_set(
    make_store: StoreFactory, tls_endpoint: FaultProxy
) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="AWS_CA_BUNDLE") as info:
        await make_store(endpoint_url=tls_endpoint.url)
    assert time.monotonic() - started < 1.0  # not retried for the whole budget
    assert info.value.attempts == 1
    assert "\n" not in str(info.value)


async def test_aws_ca_bundle_is_trusted(
    make_store: StoreFactory,
    tls_endpoint: FaultProxy,
    ca_bundle: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", ca_bundle)
    await round_trip(await make_store(endpoint_url=tls_endpoint.url))


async def test_a_profile_ca_bundle_is_trusted(
    make_store: StoreFactory,
    tls_endpoint: FaultProxy,
    ca_bundle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile corp]\naws_access_key_id = local\naws_secret_access_key = local\n"
        f"ca_bundle = {ca_bundle}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    await round_trip(await make_store(endpoint_url=tls_endpoint.url, profile="corp"))


# -- an endpoint behind a gateway path -------------------------------------------------


async def test_an_endpoint_path_is_sent_and_signed(make_store: StoreFactory, server: Any) -> None:
    async with FaultProxy(server.url, path="/dynamodb", check_signatures={"local": "local"}) as gw:
        assert gw.url.endswith("/dynamodb")
        store = await make_store(endpoint_url=gw.url)
        await round_trip(store)
    assert gw.count("GetItem") == 1
    assert gw.upstream_errors == []


async def test_the_gateway_refuses_a_wrong_signature(make_store: StoreFactory, server: Any) -> None:
    async with FaultProxy(server.url, path="/dynamodb", check_signatures={"local": "other"}) as gw:
        with pytest.raises(AccessDenied, match="signature we calculated does not match"):
            await make_store(endpoint_url=gw.url, retry=RetryPolicy())
