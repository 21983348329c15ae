"""DynamoDB's size and capacity rules, for estimates: what an item weighs, what a request costs.

From the Developer Guide's "Item sizes and formats" and the pricing pages: an
item's size is its attribute names (UTF-8) plus its values; a number is one
byte per two significant digits plus one; binary values count their decoded
bytes. A write request unit covers 1 KB of the larger of the old and new
item; a strongly consistent read unit 4 KB (half for an eventually
consistent read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["item_size", "number_size", "read_units", "value_size", "write_units"]


def number_size(text: str) -> int:
    """Bytes of an N value: base-100 digit pairs aligned on the decimal point, plus 1."""
    if text.isdigit():  # the common case: a non-negative integer
        stripped = text.lstrip("0")
        if not stripped:
            return 1
        digits = len(stripped.rstrip("0"))
        exponent = len(stripped) - 1
        negative = 0
    else:
        sign, digit_tuple, exp = Decimal(text).normalize().as_tuple()
        if digit_tuple == (0,):
            return 1
        digits = len(digit_tuple)
        exponent = digits - 1 + int(exp)
        negative = sign
    pairs = (digits + 1) // 2 + (1 if digits % 2 == 0 and exponent % 2 == 0 else 0)
    return 1 + pairs + negative


def _b64_size(text: str) -> int:
    return len(text) * 3 // 4 - text[-2:].count("=")


def _str_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (without its name), in wire form."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return _str_size(raw)
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return _b64_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(1 + _str_size(name) + value_size(v) for name, v in raw.items())
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "SS":
        return sum(_str_size(v) for v in raw)
    if kind == "NS":
        return sum(number_size(v) for v in raw)
    if kind == "BS":
        return sum(_b64_size(v) for v in raw)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of an item in wire form: attribute names plus values (DynamoDB's item size)."""
    return sum(_str_size(name) + value_size(v) for name, v in item.items())


def read_units(size: int | None, consistent: bool) -> float:
    """Read request units of reading an item of ``size`` bytes (None: no item, still 1)."""
    units = 1 if size is None else math.ceil(size / 4096)
    return units if consistent else units / 2


def write_units(*sizes: int | None) -> int:
    """Write request units of a write: 1 KB of the largest of the items it touched."""
    largest = max((s for s in sizes if s is not None), default=0)
    return max(1, math.ceil(largest / 1024))
