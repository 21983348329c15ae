"""Compression of stored blobs: round trips, old plain blobs, and bounded inflation."""

from __future__ import annotations

import os
import zlib

import msgpack
import pytest

from cyclicsess import DecodeError
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
