"""Configuration errors are clear and raised before any request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cyclicsess import ConfigurationError, DynamoClient, RetryPolicy, SessionStore, open_client
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
    assert client.endpoint_url == "https://dynamodb.eu-central-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    client = await open_client()
    assert client.endpoint_url == "http://127.0.0.1:9"


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
