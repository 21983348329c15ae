"""Codecs turn the user's session dict into the bytes stored in ``data`` and back.

:class:`MsgpackCodec` is the default: compact, fast, and it never executes
anything while decoding. :class:`JsonCodec` stores JSON text, for tables read
by other tools. Both check that what they decode is a dict, and both fail
with :class:`~cyclicsess.errors.EncodeError` naming the key and type of a
value they cannot store, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

import msgpack

from .errors import DecodeError, EncodeError

__all__ = ["Codec", "JsonCodec", "MsgpackCodec"]

_EXT_DATETIME = 1
_EXT_DATE = 2
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class Codec(Protocol):
    """What the store needs from a codec."""

    #: DynamoDB type of the ``data`` attribute: ``"B"`` (binary) or ``"S"`` (string).
    attribute_type: Literal["B", "S"]

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """Serialise a session dict; raise ``EncodeError`` naming an unsupported value."""
        ...

    def decode(self, blob: bytes) -> dict[str, Any]:
        """Deserialise stored bytes; raise ``DecodeError`` unless they hold a dict."""
        ...


def _msgpack_default(value: object) -> msgpack.ExtType | dict[Any, Any]:
    if isinstance(value, Mapping):  # a Mapping that is not a dict
        return dict(value)
    # datetime before date: datetime is a subclass of date.
    if isinstance(value, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, value.isoformat().encode())
    if isinstance(value, dt.date):
        return msgpack.ExtType(_EXT_DATE, value.isoformat().encode())
    raise TypeError(type(value).__name__)


def _msgpack_ext(code: int, payload: bytes) -> object:
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(payload.decode())
    if code == _EXT_DATE:
        return dt.date.fromisoformat(payload.decode())
    raise ValueError(f"unknown msgpack extension type {code}")


def _json_default(value: object) -> dict[Any, Any]:
    if isinstance(value, Mapping):  # a Mapping that is not a dict
        return dict(value)
    raise TypeError(type(value).__name__)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _is_msgpack_leaf(value: object) -> bool:
    if isinstance(value, str):
        return _is_utf8(value)
    if value is None or isinstance(value, (bool, float, bytes, dt.date)):
        return True
    return isinstance(value, int) and _INT_MIN <= value <= _INT_MAX


def _is_json_leaf(value: object) -> bool:
    if isinstance(value, str):
        return _is_utf8(value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int))


def _kind(value: object) -> str:
    """What is wrong with a value a codec refused, in words."""
    if isinstance(value, str):
        return "a string with a lone surrogate (not UTF-8)"
    if isinstance(value, float):
        return f"a non-finite float ({value!r})"
    if isinstance(value, int) and not isinstance(value, bool):
        return "an int out of 64-bit range"
    return f"unsupported type {type(value).__name__}"


def _walk(value: object, path: str) -> Iterator[tuple[str, object]]:
    """Yield (path, value) for every leaf and container key in ``value``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path}[{key!r}] (key)", key
            yield from _walk(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def _unsupported(data: Mapping[str, Any], is_leaf: Any, codec: str) -> EncodeError:
    for path, value in _walk(data, "session"):
        if not is_leaf(value):
            return EncodeError(f"{codec} cannot store {path}: {_kind(value)}")
    return EncodeError(f"{codec} cannot store this session")


def _require_mapping(data: object) -> None:
    if not isinstance(data, Mapping):
        raise EncodeError(f"a session must be a mapping, not {type(data).__name__}")


class MsgpackCodec:
    """msgpack with datetimes and dates kept (default codec).

    Supports None, bool, int (64-bit), float, str, bytes, list, tuple (read back
    as list), dict, ``datetime.datetime`` (naive or aware; the UTC offset is
    kept) and ``datetime.date``.
    """

    attribute_type: Literal["B", "S"] = "B"

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """Serialise ``data`` to msgpack bytes."""
        _require_mapping(data)
        try:
            blob: bytes = msgpack.packb(dict(data), default=_msgpack_default, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _unsupported(data, _is_msgpack_leaf, "msgpack") from exc
        return blob

    def decode(self, blob: bytes) -> dict[str, Any]:
        """Deserialise msgpack bytes into a dict."""
        try:
            data = msgpack.unpackb(
                blob, raw=False, ext_hook=_msgpack_ext, strict_map_key=False, timestamp=3
            )
        except Exception as exc:  # msgpack raises many types on corrupt input
            raise DecodeError(f"stored bytes are not valid msgpack: {exc}") from exc
        if not isinstance(data, dict):
            raise DecodeError(f"stored session is a {type(data).__name__}, not a dict")
        return data


class JsonCodec:
    """JSON text, stored as a DynamoDB string: for tables other tools read.

    Supports only JSON's types: a datetime is refused (convert it yourself).
    """

    attribute_type: Literal["B", "S"] = "S"

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """Serialise ``data`` to UTF-8 JSON."""
        _require_mapping(data)
        try:
            text = json.dumps(
                dict(data),
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
                default=_json_default,
            )
            blob = text.encode()
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise _unsupported(data, _is_json_leaf, "JSON") from exc
        return blob

    def decode(self, blob: bytes) -> dict[str, Any]:
        """Deserialise UTF-8 JSON into a dict."""
        try:
            data = json.loads(blob)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"stored bytes are not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise DecodeError(f"stored session is a {type(data).__name__}, not a dict")
        return data
