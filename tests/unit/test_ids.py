"""Session ids, storage keys and cookie signatures."""

from __future__ import annotations

import base64

import pytest

from cyclicsess import ConfigurationError, CookieSigner, is_well_formed, new_session_id
from cyclicsess.ids import SESSION_ID_LENGTH, KeyHasher

SECRET = "a-server-secret-of-32-bytes-long"


def test_ids_carry_256_random_bits_and_do_not_repeat() -> None:
    ids = {new_session_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for sid in list(ids)[:100]:
        assert len(sid) == SESSION_ID_LENGTH
        assert len(base64.urlsafe_b64decode(sid + "=")) == 32
        assert is_well_formed(sid)


@pytest.mark.parametrize(
    "sid",
    [
        "",
        "short",
        "x" * 42,
        "x" * 44,
        "x" * 10_000,
        "é" * 43,
        "a" * 42 + "=",
        "a" * 42 + "\n",
        "a" * 42 + "\x00",
        None,
        43,
        b"a" * 43,
    ],
)
def test_malformed_ids_are_refused(sid: object) -> None:
    assert not is_well_formed(sid)


def test_storage_key_is_a_hash_never_the_id() -> None:
    sid = new_session_id()
    plain = KeyHasher(None, "sess:").storage_key(sid)
    keyed = KeyHasher(SECRET, "sess:").storage_key(sid)
    other_secret = KeyHasher(SECRET + "!", "sess:").storage_key(sid)
    assert plain.startswith("sess:") and keyed.startswith("sess:")
    assert sid not in plain and sid not in keyed
    assert len({plain, keyed, other_secret}) == 3
    assert KeyHasher(SECRET, "sess:").storage_key(sid) == keyed  # stable


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        KeyHasher("too short", "")
    with pytest.raises(ConfigurationError):
        CookieSigner(b"")


def test_cookie_signature_round_trips_and_rejects_tampering() -> None:
    signer = CookieSigner(SECRET)
    sid = new_session_id()
    value = signer.sign(sid)
    assert signer.unsign(value) == sid
    other = new_session_id()
    forged = f"{other}.{value.split('.')[1]}"
    assert signer.unsign(forged) is None
    assert signer.unsign(value[:-1] + ("A" if value[-1] != "A" else "B")) is None
    assert signer.unsign(sid) is None
    assert signer.unsign(CookieSigner(SECRET + "x").sign(sid)) is None
    for junk in ["", ".", "..", "é.é", "a" * 5000, value + ".", "\x00" * 90]:
        assert signer.unsign(junk) is None
