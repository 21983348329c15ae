"""The hand-made SigV4 signer against AWS's documented key and botocore's own signer."""

from __future__ import annotations

import datetime as dt

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from cyclicsess import Credentials
from cyclicsess._sigv4 import RequestSigner, canonical_path, signing_key


def test_signing_key_matches_the_aws_documentation_example() -> None:
    # From AWS's "Examples of how to derive a signing key for Signature Version 4".
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


SIGNING_TIME = dt.datetime(2026, 11, 27, 3, 4, 5)


def botocore_authorization(
    monkeypatch: pytest.MonkeyPatch,
    credentials: Credentials,
    url: str,
    region: str,
    headers: dict[str, str],
    body: bytes,
) -> str:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNING_TIME)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    boto_credentials = BotoCredentials(
        credentials.access_key, credentials.secret_key, credentials.token
    )
    SigV4Auth(boto_credentials, "dynamodb", region).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize(
    ("url", "host", "token", "body"),
    [
        (
            "https://dynamodb.eu-west-1.amazonaws.com/",
            "dynamodb.eu-west-1.amazonaws.com",
            None,
            b'{"TableName":"sessions"}',
        ),
        (
            "http://127.0.0.1:8000/",
            "127.0.0.1:8000",
            "FQoGZXIvYXdzEJr//token+with/slashes=",
            b'{"Key":{"id":{"S":"sess:abc"}},"TableName":"t"}',
        ),
        (
            "https://dynamodb.us-east-1.amazonaws.com/",
            "dynamodb.us-east-1.amazonaws.com",
            "t",
            '{"S":"caf\u00e9 \u2603"}'.encode(),
        ),
        ("http://localhost:4566/", "localhost:4566", None, b""),
    ],
)
def test_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, url: str, host: str, token: str | None, body: bytes
) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    region = "eu-west-1"
    amz_date = SIGNING_TIME.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.GetItem",
    }
    RequestSigner(host, region).sign(credentials, amz_date, headers, body)

    boto_headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
    }
    expected = botocore_authorization(monkeypatch, credentials, url, region, boto_headers, body)
    assert headers["authorization"] == expected
    assert headers["host"] == host
    assert headers.get("x-amz-security-token") == token


def test_signing_key_is_recomputed_when_the_day_or_secret_changes() -> None:
    signer = RequestSigner("h", "us-east-1")
    headers: dict[str, str] = {}
    first = Credentials("AK", "secret-one")
    signer.sign(first, "20261127T000000Z", headers, b"{}")
    day_one = headers["authorization"]
    signer.sign(first, "20261128T000000Z", headers := {}, b"{}")
    assert "20261128/us-east-1/dynamodb/aws4_request" in headers["authorization"]
    assert headers["authorization"] != day_one
    signer.sign(Credentials("AK", "secret-two"), "20261128T000000Z", other := {}, b"{}")
    assert other["authorization"] != headers["authorization"]


@pytest.mark.parametrize(
    "path",
    ["/dynamodb", "/dynamodb/", "/a/b/../c", "//double//slash", "/with%20space", "/~tilde/x.y"],
)
def test_an_endpoint_path_is_signed_as_botocore_signs_it(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    amz_date = SIGNING_TIME.strftime("%Y%m%dT%H%M%SZ")
    body = b'{"TableName":"t"}'
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": "T.GetItem"}
    RequestSigner("gw.example", "eu-west-1", path=path).sign(credentials, amz_date, headers, body)
    expected = botocore_authorization(
        monkeypatch,
        credentials,
        f"https://gw.example{path}",
        "eu-west-1",
        {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "T.GetItem"},
        body,
    )
    assert headers["authorization"] == expected


def test_canonical_path_encodes_segments_again() -> None:
    assert canonical_path("") == "/"
    assert canonical_path("/") == "/"
    assert canonical_path("/a%2Fb") == "/a%252Fb"
    assert canonical_path("/x/./y/../z/") == "/x/z/"
