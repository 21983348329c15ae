"""Codecs: round trips, clear errors naming the bad value, and safety on garbage."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclicsess import DecodeError, EncodeError, JsonCodec, MsgpackCodec

SESSION: dict[str, Any] = {
    "user": {"id": 42, "name": "Ada Lovelace", "roles": ["admin", "dev"]},
    "cart": [{"sku": "A-1", "qty": 2, "price": 9.99}],
    "csrf": "b6f1c2",
    "flags": {"beta": True, "legacy": None},
    "blob": b"\x00\xff",
}


@pytest.mark.parametrize("codec", [MsgpackCodec(), JsonCodec()], ids=["msgpack", "json"])
def test_round_trip(codec: MsgpackCodec | JsonCodec) -> None:
    data = dict(SESSION)
    if isinstance(codec, JsonCodec):
        del data["blob"]  # JSON has no bytes
    assert codec.decode(codec.encode(data)) == data


def test_msgpack_keeps_datetimes_and_dates() -> None:
    codec = MsgpackCodec()
    data = {
        "utc": dt.datetime(2026, 11, 27, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
        "offset": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "naive": dt.datetime(2026, 11, 27, 12, 0),
        "day": dt.date(2026, 2, 28),
        "nested": [{"at": dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)}],
    }
    back = codec.decode(codec.encode(data))
    assert back == data
    assert back["offset"].utcoffset() == dt.timedelta(hours=-5)
    assert back["naive"].tzinfo is None
    assert type(back["day"]) is dt.date


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"cart": [1, {"when": {1, 2}}]}, "session['cart'][1]['when']: unsupported type set"),
        ({"obj": object()}, "session['obj']: unsupported type object"),
        ({"big": 2**80}, "session['big']: an int out of 64-bit range"),
    ],
)
def test_msgpack_names_the_unsupported_value(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EncodeError) as info:
        MsgpackCodec().encode(data)
    assert fragment in str(info.value)


def test_json_names_the_unsupported_value() -> None:
    with pytest.raises(EncodeError) as info:
        JsonCodec().encode({"at": dt.datetime(2026, 1, 1)})
    assert "session['at']: unsupported type datetime" in str(info.value)


@pytest.mark.parametrize("codec", [MsgpackCodec(), JsonCodec()], ids=["msgpack", "json"])
def test_encode_refuses_a_non_mapping(codec: MsgpackCodec | JsonCodec) -> None:
    with pytest.raises(EncodeError, match="must be a mapping"):
        codec.encode([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xc1",  # never used in msgpack
        msgpack.packb([1, 2, 3]),  # valid msgpack, not a dict
        msgpack.packb({"a": 1}) + b"trailing",
        msgpack.packb(msgpack.ExtType(99, b"x")),
        msgpack.packb({"a": msgpack.ExtType(1, b"not a date")}),
        b"\x81\xa1a\xd9\x05\xff\xfe\xfd\xfc\xfb",  # invalid UTF-8 in a str
    ],
)
def test_msgpack_decode_refuses_garbage(blob: bytes) -> None:
    with pytest.raises(DecodeError):
        MsgpackCodec().decode(blob)


@pytest.mark.parametrize("blob", [b"", b"[1]", b"{", b"\xff\xfe", b'"text"', b"[" * 100_000])
def test_json_decode_refuses_garbage(blob: bytes) -> None:
    with pytest.raises(DecodeError):
        JsonCodec().decode(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_to_a_dict_or_decode_error(blob: bytes) -> None:
    for codec in (MsgpackCodec(), JsonCodec()):
        with contextlib.suppress(DecodeError):
            assert isinstance(codec.decode(blob), dict)


@pytest.mark.parametrize("codec", [MsgpackCodec(), JsonCodec()], ids=["msgpack", "json"])
def test_any_mapping_is_stored_as_a_dict(codec: MsgpackCodec | JsonCodec) -> None:
    from types import MappingProxyType

    data = MappingProxyType({"a": MappingProxyType({"b": 1})})
    assert codec.decode(codec.encode(data)) == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "caf\udce9"}, "session['name']: a string with a lone surrogate"),
        ({"caf\udce9": 1}, "session['caf\\udce9'] (key): a string with a lone surrogate"),
        ({"score": float("nan")}, "session['score']: a non-finite float (nan)"),
        ({"xs": [1.0, float("-inf")]}, "session['xs'][1]: a non-finite float (-inf)"),
    ],
)
def test_json_refuses_what_json_text_cannot_hold(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EncodeError) as info:
        JsonCodec().encode(data)
    assert fragment in str(info.value)


def test_msgpack_refuses_a_lone_surrogate_by_name() -> None:
    with pytest.raises(EncodeError, match=r"session\['n'\]: a string with a lone surrogate"):
        MsgpackCodec().encode({"n": "\ud800"})
    assert MsgpackCodec().decode(MsgpackCodec().encode({"x": float("inf")})) == {"x": float("inf")}
