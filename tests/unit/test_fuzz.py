"""Bad input, fuzzed: cookies, ids and stored bytes never raise anything undocumented.

No server is needed: the store here points at a loopback port nothing listens
on, so any request it tried to send would fail loudly (StoreUnavailable); ids
it refuses without a request come back as None.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclicsess import (
    CookieSigner,
    DecodeError,
    JsonCodec,
    MsgpackCodec,
    RetryPolicy,
    SessionNotFound,
    SessionStore,
    is_well_formed,
    new_session_id,
)
from cyclicsess._item import TableLayout
from tests.helpers import closed_port

SECRET = "fuzzing-secret-0123456789abcdef"
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.text(max_size=5000)
ID_LIKE = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=100
)


def unreachable_store() -> SessionStore:
    return SessionStore(
        "t",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region="us-east-1",
        retry=RetryPolicy(budget=dt.timedelta(seconds=0.2)),
    )


@settings(max_examples=500, deadline=None)
@given(ANY_TEXT | ID_LIKE)
def test_unsign_returns_a_well_formed_id_or_none(value: str) -> None:
    sid = CookieSigner(SECRET).unsign(value)
    assert sid is None or (is_well_formed(sid) and value.startswith(sid + "."))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_unsign_survives_undecodable_cookie_bytes(raw: bytes) -> None:
    value = raw.decode("utf-8", "surrogateescape")
    assert CookieSigner(SECRET).unsign(value) is None  # no forgery by chance


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    signer = CookieSigner(SECRET)
    sid = new_session_id()
    assert signer.unsign(signer.sign(sid)) == sid
    assert signer.unsign(sid + "." + "A" * 43) is None
    assert len(calls) == 2


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_id_that_was_not_issued_is_refused_without_a_request(sid: str) -> None:
    if is_well_formed(sid):  # 43 URL-safe characters: a look-up is legitimate
        return

    async def probe() -> None:
        store = unreachable_store()
        try:
            assert await store.get(sid) is None
            assert await store.touch(sid) is False
            await store.destroy(sid)
            with pytest.raises(SessionNotFound):
                await store.set(sid, {"a": 1})
            with pytest.raises(SessionNotFound):
                await store.regenerate(sid)
        finally:
            await store.close()

    asyncio.run(probe())


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["data", "expires", "touched", "created", "ver", "id", "x"]),
        st.one_of(
            st.dictionaries(
                st.sampled_from(["S", "N", "B", "M", "L", "NULL"]),
                st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
                max_size=2,
            ),
            st.text(max_size=5),
            st.none(),
        ),
    )
)
def test_arbitrary_items_parse_or_raise_decode_error(item: dict[str, Any]) -> None:
    for layout in (TableLayout("t"), TableLayout("t", data_type="S")):
        try:
            stored = layout.parse(item)
        except DecodeError:
            continue
        for codec in (MsgpackCodec(), JsonCodec()):
            with contextlib.suppress(DecodeError):
                assert isinstance(codec.decode(stored.blob), dict)
