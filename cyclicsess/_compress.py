"""Compressing a session's encoded bytes when that makes its item cheaper.

A compressed blob starts with a byte no msgpack map can start with (``0x00``)
and a byte naming the method, then the compressed stream; anything else is a
plain blob, so items written before compression existed read as they are.
Decompression is bounded: a small blob that would inflate beyond
:data:`MAX_DECOMPRESSED` (a decompression bomb) is refused with
``DecodeError`` after inflating at most that much.
"""

from __future__ import annotations

import zlib

from .errors import DecodeError

__all__ = ["MAX_DECOMPRESSED", "compressed", "decompressed", "worth_compressing"]

_MARK = b"\x00"
_ZLIB = b"z"
#: The most bytes a stored blob may inflate to: DynamoDB's item limit, with room.
MAX_DECOMPRESSED = 4 * 1024 * 1024
#: Blobs shorter than this are never worth the CPU (and rarely shrink).
MIN_LENGTH = 256
_LEVEL = 6


def worth_compressing(blob: bytes) -> bool:
    """Whether ``blob`` is long enough that compressing it may save a write unit."""
    return len(blob) >= MIN_LENGTH


def compressed(blob: bytes) -> bytes:
    """``blob`` compressed (zlib), with its marker."""
    return _MARK + _ZLIB + zlib.compress(blob, _LEVEL)


def decompressed(blob: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """The plain bytes of a stored blob (compressed or not), at most ``limit`` of them.

    Raises:
        DecodeError: the blob is marked compressed but is corrupt, of an
            unknown method, or inflates beyond ``limit``.
    """
    if not blob.startswith(_MARK):
        return blob
    if blob[1:2] != _ZLIB:
        raise DecodeError(f"unknown compression method {blob[1:2]!r}")
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(blob[2:], limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"stored bytes do not decompress: {exc}") from exc
    if len(plain) > limit or inflater.unconsumed_tail:
        raise DecodeError(f"stored bytes inflate beyond {limit} bytes: refused")
    if not inflater.eof:
        raise DecodeError("stored bytes are a truncated compressed stream")
    return plain
