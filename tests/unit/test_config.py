"""Configuration errors are clear and raised before any request."""

from __future__ import annotations

import datetime as dt
import inspect
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from cyclicsess import (
    ConfigurationError,
    DynamoClient,
    RetryPolicy,
    SessionRecord,
    SessionStore,
    open_client,
)
from cyclicsess._sigv4 import Credentials


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws")
async def test_no_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no AWS region"):
        await open_client()


@pytest.mark.usefixtures("no_aws")
async def test_no_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no AWS credentials"):
        await open_client(region="eu-west-1")


@pytest.mark.usefixtures("no_aws")
async def test_region_and_endpoint_come_from_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKEN")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    client = await open_client()
    assert client.region == "eu-central-1"
    assert client.endpoint_url == "https://dynamodb.eu-central-1.amazonaws.com/"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    client = await open_client()
    assert client.endpoint_url == "http://127.0.0.1:9/"


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": timedelta(0)},
        {"ttl": timedelta(seconds=-1)},
        {"touch_interval": timedelta(seconds=-1)},
        {"absolute_lifetime": timedelta(0)},
        {"secret": "short"},
    ],
)
def test_bad_store_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SessionStore("t", **options)  # type: ignore[arg-type]


def test_bad_table_endpoint_and_budget() -> None:
    with pytest.raises(ConfigurationError):
        SessionStore("")
    with pytest.raises(ConfigurationError):
        RetryPolicy(budget=timedelta(0))

    async def creds() -> Credentials:
        return Credentials("a", "b")

    with pytest.raises(ConfigurationError):
        DynamoClient(endpoint_url="ftp://example", region="r", credentials=creds)


def test_from_env_needs_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYCLIC_DB", raising=False)
    with pytest.raises(ConfigurationError, match="CYCLIC_DB"):
        SessionStore.from_env()
    monkeypatch.setenv("CYCLIC_DB", "cyclic-table")
    monkeypatch.setenv("SESSION_SECRET", "x" * 32)
    assert SessionStore.from_env().layout.table == "cyclic-table"


async def test_closed_store_client_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="not open"):
        SessionStore("t").client  # noqa: B018 - the property access is the test


@pytest.mark.usefixtures("no_aws")
async def test_aws_region_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    client = await open_client()
    assert client.region == "ap-southeast-2"
    assert client.endpoint_url == "https://dynamodb.ap-southeast-2.amazonaws.com/"


@pytest.mark.usefixtures("no_aws")
async def test_aws_region_comes_before_the_default_region_and_the_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    assert (await open_client()).region == "sa-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    assert (await open_client()).region == "eu-north-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert (await open_client()).region == "us-west-2"
    assert (await open_client(region="eu-west-3")).region == "eu-west-3"


async def static_credentials() -> Credentials:
    return Credentials("a", "b")


@pytest.mark.parametrize(
    "url",
    [
        "https://gw.example/dynamodb?stage=prod",
        "https://gw.example/#fragment",
        "https://user:pass@gw.example/",
    ],
)
def test_an_endpoint_with_a_query_is_refused_clearly(url: str) -> None:
    with pytest.raises(ConfigurationError, match="must not carry a query"):
        DynamoClient(endpoint_url=url, region="r", credentials=static_credentials)


def test_an_endpoint_path_is_kept() -> None:
    client = DynamoClient(
        endpoint_url="https://gw.example/dynamodb", region="r", credentials=static_credentials
    )
    assert client.endpoint_url == "https://gw.example/dynamodb"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 3600}, r"ttl must be a datetime.timedelta.*ttl=timedelta\(seconds=3600\)"),
        ({"touch_interval": 30}, r"touch_interval=timedelta\(seconds=30\)"),
        ({"absolute_lifetime": "1d"}, "absolute_lifetime must be a datetime.timedelta"),
        (
            {"ttl": timedelta(minutes=10), "touch_interval": timedelta(minutes=10)},
            "touch_interval .* must be shorter than ttl",
        ),
        (
            {"ttl": timedelta(minutes=10), "touch_interval": timedelta(hours=1)},
            "log active users out",
        ),
    ],
)
def test_wrong_durations_say_how_to_fix_them(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SessionStore("t", **options)  # type: ignore[arg-type]


def test_a_record_repr_hides_the_id_and_the_data() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    sid = "A" * 43
    record = SessionRecord(sid, {"csrf": "s3cret-token"}, 3, now, now, now)
    text = repr(record)
    assert sid not in text
    assert "s3cret-token" not in text
    assert "'csrf'" in text
    assert "version=3" in text
    assert sid not in str(record)


async def test_the_dns_cache_lifetime_is_aiohttp_default() -> None:
    client = DynamoClient(
        endpoint_url="http://127.0.0.1:9", region="r", credentials=static_credentials
    )
    pool = await client._pools.open()
    try:
        default = inspect.signature(aiohttp.TCPConnector).parameters["ttl_dns_cache"].default
        # aiohttp keeps the lifetime in its DNS cache table (no public accessor)
        assert pool.http.connector._cached_hosts._ttl == default == 10  # type: ignore[union-attr]
    finally:
        await client.close()
