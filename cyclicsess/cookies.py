"""The session cookie, framework-free: its settings, reading it, setting and expiring it.

:class:`CookieSettings` says how the cookie is named and set; a request's
cookie is read with :func:`cookie_values` (every value of that name: two of
them mean the cookie was tossed in from a sibling domain, and are no
session); :class:`CookieOp` is the cookie to set or expire, as plain values
with the ``Set-Cookie`` header they make; :func:`is_https` tells from a
scheme and headers whether a request arrived over HTTPS.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email.utils import format_datetime
from typing import Literal

from .errors import ConfigurationError

__all__ = ["CookieOp", "CookieSettings", "ResolvedCookie", "cookie_values", "is_https"]

SameSite = Literal["Lax", "Strict", "None"]

#: The name of the session cookie over HTTPS, where browsers accept the prefix.
HOST_NAME = "__Host-session"
#: Over HTTPS when a domain or a path is set (``__Host-`` allows neither).
SECURE_NAME = "__Secure-session"
#: Over plain HTTP: no prefix is possible there (Safari refuses Secure cookies
#: even on http://localhost).
PLAIN_NAME = "session"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a cookie name (RFC 6265: a token)
_SAMESITE: dict[str, SameSite] = {"lax": "Lax", "strict": "Strict", "none": "None"}
_PREFIXES = ("__Host-", "__Secure-")
_EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def _normalised_name(name: str) -> str:
    """``__host-x`` and ``__HOST-x`` as ``__Host-x``: browsers match the prefixes exactly."""
    for prefix in _PREFIXES:
        if name[: len(prefix)].lower() == prefix.lower():
            return prefix + name[len(prefix) :]
    return name


@dataclass(frozen=True)
class ResolvedCookie:
    """The cookie's name, path and ``Secure`` flag for one request."""

    name: str
    path: str
    secure: bool


@dataclass(frozen=True)
class CookieSettings:
    """How the session cookie is set.

    Attributes:
        name: the cookie's name. None (the default) picks the safest name the
            request allows: ``__Host-session`` over HTTPS (no sibling domain
            can set or toss in a cookie of that name), ``__Secure-session``
            over HTTPS with a ``domain`` or a path other than ``/``, and
            ``session`` over plain HTTP. A name's ``__Host-``/``__Secure-``
            prefix is normalised to that spelling.
        path: the cookie's path; ``/`` follows an ASGI app's ``root_path``.
        domain: the cookie's domain, or None for the request's host only.
        persistent: send ``Max-Age`` (and ``Expires``), renewed with each write
            or touch; False makes a browser-session cookie.
        max_age: the cookie's lifetime when persistent; None: the store's ``ttl``.
        secure: ``Secure`` always (True), never (False), or when the request is
            HTTPS (None; behind a proxy, see ``trust_forwarded``).
        samesite: ``Lax``, ``Strict`` or ``None``, in any case.
        httponly: hide the cookie from JavaScript.
    """

    name: str | None = None
    path: str = "/"
    domain: str | None = None
    persistent: bool = True
    max_age: dt.timedelta | None = None
    secure: bool | None = None
    samesite: SameSite = "Lax"
    httponly: bool = True

    def __post_init__(self) -> None:
        samesite = _SAMESITE.get(str(self.samesite).lower())
        if samesite is None:
            raise ConfigurationError(
                f"samesite must be 'Lax', 'Strict' or 'None', not {self.samesite!r}"
            )
        object.__setattr__(self, "samesite", samesite)
        if self.name is not None:
            name = _normalised_name(self.name)
            if not _TOKEN.fullmatch(name):
                raise ConfigurationError(f"{self.name!r} is not a valid cookie name")
            object.__setattr__(self, "name", name)
        if not self.path.startswith("/"):
            raise ConfigurationError(f"the cookie path must start with '/', not {self.path!r}")
        name = self.name or ""
        if name.startswith("__Host-") and (
            self.secure is False or self.path != "/" or self.domain is not None
        ):
            raise ConfigurationError("a __Host- cookie needs secure, path='/' and no domain")
        needs_secure = name.startswith(_PREFIXES) or samesite == "None"
        if needs_secure and self.secure is False:
            raise ConfigurationError("__Host-, __Secure- and SameSite=None cookies must be Secure")
        if self.max_age is not None and self.max_age.total_seconds() <= 0:
            raise ConfigurationError(f"max_age must be positive, not {self.max_age}")

    def resolve(self, *, https: bool, root_path: str = "") -> ResolvedCookie:
        """The name, path and ``Secure`` flag for a request (HTTPS or not, under ``root_path``)."""
        path = self.path
        if path == "/" and root_path.strip("/"):
            path = "/" + root_path.strip("/")
        name = self.name
        if name is None:
            if not https:
                name = PLAIN_NAME
            elif path == "/" and self.domain is None:
                name = HOST_NAME
            else:
                name = SECURE_NAME
        if name.startswith("__Host-"):
            path = "/"  # the prefix requires it; a root_path does not change that
        forced = name.startswith(_PREFIXES) or self.samesite == "None"
        secure = True if forced else (https if self.secure is None else self.secure)
        return ResolvedCookie(name=name, path=path, secure=secure)


@dataclass(frozen=True)
class CookieOp:
    """A cookie to set, or to expire (``value=""``, ``max_age=0``), as plain values.

    Adapters send :meth:`header` as a ``Set-Cookie`` header, or hand the
    fields to their framework's own cookie call.
    """

    name: str
    value: str
    max_age: int | None
    path: str
    domain: str | None
    secure: bool
    httponly: bool
    samesite: SameSite

    @property
    def expires(self) -> str | None:
        """``Max-Age`` as an ``Expires`` date (for clients that know only that), or None."""
        if self.max_age is None:
            return None
        if self.max_age <= 0:
            return _EXPIRED
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.max_age)
        return format_datetime(when, usegmt=True)

    def expired(self) -> CookieOp:
        """The same cookie, expired (with the same attributes: browsers require them)."""
        return replace(self, value="", max_age=0)

    def header(self) -> str:
        """The ``Set-Cookie`` header value."""
        parts = [f"{self.name}={self.value}"]
        if self.max_age is not None:
            parts.append(f"Expires={self.expires}")
            parts.append(f"Max-Age={max(self.max_age, 0)}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append(f"Path={self.path}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.samesite}")
        return "; ".join(parts)


def cookie_values(cookie_headers: Iterable[str], name: str) -> list[str]:
    """Every value of the cookie ``name`` in a request's ``Cookie`` header(s), in order."""
    values = []
    for header in cookie_headers:
        for pair in header.split(";"):
            key, eq, value = pair.strip().partition("=")
            if eq and key.strip() == name:
                values.append(value.strip().strip('"'))
    return values


def is_https(scheme: str, headers: Mapping[str, str], *, trust_forwarded: bool) -> bool:
    """Whether a request arrived over HTTPS.

    Args:
        scheme: the request's own scheme (``http``, ``https``, ``ws``, ``wss``).
        headers: its headers, looked up by lower-case name.
        trust_forwarded: believe ``Forwarded: proto=https`` and
            ``X-Forwarded-Proto: https`` (only behind a proxy that sets them).
    """
    if scheme.lower() in ("https", "wss"):
        return True
    if not trust_forwarded:
        return False
    forwarded = headers.get("forwarded")
    if forwarded:
        first = forwarded.split(",")[0]
        for pair in first.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.lower() == "proto":
                return value.strip('"').lower() == "https"
    proto = headers.get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"
