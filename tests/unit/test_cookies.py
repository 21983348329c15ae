"""The session cookie's settings, reading and writing, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from cyclicsess import ConfigurationError, CookieSettings
from cyclicsess.cookies import CookieOp, cookie_values, is_https


@pytest.mark.parametrize(
    ("options", "name", "samesite"),
    [
        ({"name": "__host-sid"}, "__Host-sid", "Lax"),
        ({"name": "__HOST-sid", "samesite": "strict"}, "__Host-sid", "Strict"),
        ({"name": "__secure-sid", "samesite": "none"}, "__Secure-sid", "None"),
        ({"samesite": "LAX"}, None, "Lax"),
    ],
)
def test_prefixes_and_samesite_are_normalised(
    options: dict[str, Any], name: str | None, samesite: str
) -> None:
    settings = CookieSettings(**options)
    assert (settings.name, settings.samesite) == (name, samesite)


@pytest.mark.parametrize(
    "options",
    [
        {"name": "__Host-sid", "path": "/app"},
        {"name": "__host-sid", "domain": "example.com"},
        {"name": "__Host-sid", "secure": False},
        {"samesite": "none", "secure": False},
        {"samesite": "sometimes"},
        {"name": "bad name"},
        {"name": "semi;colon"},
        {"path": "relative"},
    ],
)
def test_settings_browsers_would_refuse_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CookieSettings(**options)


def test_the_name_follows_https_the_domain_and_the_root_path() -> None:
    auto = CookieSettings()
    assert auto.resolve(https=True).name == "__Host-session"
    assert auto.resolve(https=False).name == "session"
    mounted = auto.resolve(https=True, root_path="/shop/")
    assert (mounted.name, mounted.path, mounted.secure) == ("__Secure-session", "/shop", True)
    assert auto.resolve(https=False, root_path="/shop").path == "/shop"
    host = CookieSettings(name="__Host-sid").resolve(https=True, root_path="/shop")
    assert host.path == "/"  # the prefix requires it
    assert CookieSettings(samesite="None").resolve(https=False).secure is True


def test_two_values_are_both_seen() -> None:
    headers = ["a=1; session=first", "session=second;b=2"]
    assert cookie_values(headers, "session") == ["first", "second"]
    assert cookie_values(['session="quoted"'], "session") == ["quoted"]
    assert cookie_values(["sessionx=1; xsession=2"], "session") == []


@pytest.mark.parametrize(
    ("scheme", "headers", "trust", "expected"),
    [
        ("https", {}, False, True),
        ("wss", {}, False, True),
        ("http", {"x-forwarded-proto": "https"}, False, False),
        ("http", {"x-forwarded-proto": "https, http"}, True, True),
        ("http", {"forwarded": 'for=1.2.3.4;proto="https", proto=http'}, True, True),
        (
            "http",
            {"forwarded": "for=1.2.3.4;proto=http", "x-forwarded-proto": "https"},
            True,
            False,
        ),
        ("http", {"forwarded": "for=1.2.3.4"}, True, False),
    ],
)
def test_https_detection(scheme: str, headers: dict[str, str], trust: bool, expected: bool) -> None:
    assert is_https(scheme, headers, trust_forwarded=trust) is expected


def test_set_and_expired_headers() -> None:
    op = CookieOp("session", "abc", 3600, "/", None, True, True, "Lax")
    header = op.header()
    assert header.startswith("session=abc; Expires=")
    assert "; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax" in header
    expired = op.expired().header()
    assert expired.startswith("session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0;")
    browser_session = CookieOp("s", "v", None, "/", "example.com", False, True, "Strict")
    assert browser_session.header() == "s=v; Domain=example.com; Path=/; HttpOnly; SameSite=Strict"
