"""Session ids: generation, the hashed storage key, and optional cookie signatures.

An id is 32 random bytes from :mod:`secrets` (256 bits), URL-safe base64
without padding: 43 characters. The table never sees it: items are keyed by
an HMAC-SHA256 of the id under a key derived from the server secret (plain
SHA-256 when no secret is given), so a table dump or a log line does not hand
out live sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from .errors import ConfigurationError

__all__ = [
    "SESSION_ID_LENGTH",
    "CookieSigner",
    "KeyHasher",
    "is_well_formed",
    "new_session_id",
]

_ID_BYTES = 32
#: Length in characters of every id :func:`new_session_id` returns.
SESSION_ID_LENGTH = 43
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_session_id() -> str:
    """A fresh session id: 256 random bits, 43 URL-safe characters."""
    return secrets.token_urlsafe(_ID_BYTES)


def is_well_formed(sid: object) -> bool:
    """Whether ``sid`` has the shape of an id this package issues (no database look-up)."""
    return (
        isinstance(sid, str)
        and len(sid) == SESSION_ID_LENGTH
        and _ID_PATTERN.fullmatch(sid) is not None
    )


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _secret_bytes(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < 16:
        raise ConfigurationError("the secret must be at least 16 bytes long")
    return raw


def _derive(secret: bytes, purpose: bytes) -> bytes:
    """A key for one purpose, so one server secret can serve several."""
    return hmac.new(secret, b"cyclicsess/" + purpose, hashlib.sha256).digest()


class KeyHasher:
    """Maps a session id to the key its item is stored under.

    Args:
        secret: the server secret (at least 16 bytes), or None for plain SHA-256.
        prefix: prepended to every key, e.g. ``"sess:"`` in a shared table.
    """

    def __init__(self, secret: str | bytes | None, prefix: str = "") -> None:
        self.prefix = prefix
        raw = None if secret is None else _secret_bytes(secret)
        self._mac = _keyed(raw, b"storage-key")
        self._user_mac = _keyed(raw, b"user-key")

    def storage_key(self, sid: str) -> str:
        """The storage key of a well-formed id."""
        return self.prefix + _digest(self._mac, sid)

    def user_key(self, user: str) -> str:
        """The index key of a user's sessions: a keyed hash of ``user``, of fixed length."""
        return self.prefix + _digest(self._user_mac, "user\x00" + user)


def _keyed(secret: bytes | None, purpose: bytes) -> hmac.HMAC | None:
    if secret is None:
        return None
    return hmac.new(_derive(secret, purpose), digestmod=hashlib.sha256)


def _digest(mac: hmac.HMAC | None, text: str) -> str:
    if mac is None:
        return _b64(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    copy = mac.copy()
    copy.update(text.encode("utf-8", "surrogatepass"))
    return _b64(copy.digest())


class CookieSigner:
    """Signs session ids for cookies so forged ids are refused before any read.

    A signed value is ``<id>.<signature>``; the signature is an HMAC-SHA256 of
    the id under a key derived from ``secret``, compared in constant time.

    Args:
        secret: the server secret, at least 16 bytes.
    """

    def __init__(self, secret: str | bytes) -> None:
        self._mac = hmac.new(_derive(_secret_bytes(secret), b"cookie"), digestmod=hashlib.sha256)

    def _signature(self, sid: str) -> str:
        mac = self._mac.copy()
        mac.update(sid.encode())
        return _b64(mac.digest())

    def sign(self, sid: str) -> str:
        """The cookie value for ``sid``."""
        return f"{sid}.{self._signature(sid)}"

    def unsign(self, value: str) -> str | None:
        """The id in a signed cookie value, or None if it is malformed or forged."""
        sid, dot, signature = value.partition(".")
        if not dot or not is_well_formed(sid):
            return None
        expected = self._signature(sid)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        return sid
