"""Compression of stored blobs and where large data goes: round trips, bombs, placement."""

from __future__ import annotations

import os
import zlib

import msgpack
import pytest

from cyclicsess import DecodeError, SessionStore
from cyclicsess._compress import MAX_DECOMPRESSED, compressed, decompressed, worth_compressing


def test_a_compressed_blob_round_trips() -> None:
    blob = msgpack.packb({"draft": "a form field value " * 500})
    packed = compressed(blob)
    assert packed.startswith(b"\x00z") and len(packed) < len(blob) / 10
    assert decompressed(packed) == blob


def test_plain_msgpack_maps_pass_unchanged() -> None:
    for data in [{}, {"a": 1}, {str(n): n for n in range(20)}, {"b": os.urandom(70_000)}]:
        blob = msgpack.packb(data)
        assert not blob.startswith(b"\x00")  # no map starts with the marker
        assert decompressed(blob) == blob


def test_short_blobs_are_not_worth_compressing() -> None:
    assert not worth_compressing(b"\x81\xa1a\x01")
    assert worth_compressing(b"x" * 4096)


def test_a_bomb_is_refused_within_the_bound() -> None:
    bomb = compressed(b"\x00" * (MAX_DECOMPRESSED * 50))
    with pytest.raises(DecodeError, match="inflate beyond"):
        decompressed(bomb)
    exactly = compressed(b"\x00" * MAX_DECOMPRESSED)
    assert len(decompressed(exactly)) == MAX_DECOMPRESSED
    with pytest.raises(DecodeError, match="inflate beyond"):
        decompressed(exactly, limit=MAX_DECOMPRESSED - 1)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00z" + b"not zlib at all", "do not decompress"),
        (b"\x00z" + zlib.compress(b"x" * 1000)[:-6], "truncated"),
        (b"\x00q" + zlib.compress(b"x"), "unknown compression"),
        (b"\x00", "unknown compression"),
    ],
)
def test_corrupt_compressed_blobs_are_decode_errors(blob: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decompressed(blob)


@pytest.mark.parametrize(
    ("size", "units", "touches", "in_head"),
    [
        (600, 1, 50, True),  # one write unit: always in the head
        (1_500, 2, None, True),  # a new session (one touch assumed): 1 x (2 - 1) <= 1
        (2_500, 3, None, False),  # 1 x (3 - 1) > 1
        (1_500, 2, 2, False),  # two touches since the last write: 2 x (2 - 1) > 1
        (1_500, 2, 1, True),
        (30_000, 30, 0, True),  # no touches between writes: nothing to save
        (30_000, 30, 1, False),
    ],
)
def test_large_data_goes_apart_when_its_touches_pay_for_it(
    size: int, units: int, touches: int | None, in_head: bool
) -> None:
    store = SessionStore("t", region="us-east-1")
    key = store.storage_key("a" * 43)
    blob = os.urandom(size)
    assert -(-store.layout.item_size(key, blob) // 1024) == units  # the head's write units
    assert store._in_head(key, blob, touches) is in_head
    inline = SessionStore("t", region="us-east-1", separate_large_data=False)
    assert inline._in_head(key, blob, touches)
