"""The billing rules against the examples of DynamoDB's Developer Guide.

Sources: "DynamoDB read and write operations" (capacity unit consumption) and
"Item sizes and formats" of the Developer Guide. The benchmark's cost tables
and ``DynamoClient.measure_capacity`` rest on these rules.
"""

from __future__ import annotations

import base64

import pytest

from cyclicsess._capacity import item_size, number_size, read_units, value_size, write_units

KB = 1024


# Reads: rounded up to 4 KB; eventually consistent reads cost half.
@pytest.mark.parametrize(
    ("size", "strong", "eventual"),
    [
        (3500, 1, 0.5),  # "reading a 3,500-byte item consumes the same ... as a 4 KB item"
        (4 * KB, 1, 0.5),
        (8 * KB, 2, 1),  # "if your item size is 8 KB, you require 2 read units ... 1 eventual"
        (10 * KB, 3, 1.5),  # "if you read a 10 KB item, DynamoDB rounds ... to 12 KB"
        (4 * KB + 1, 2, 1),
    ],
)
def test_read_units_round_up_to_4_kb(size: int, strong: float, eventual: float) -> None:
    assert read_units(size, consistent=True) == strong
    assert read_units(size, consistent=False) == eventual


def test_a_read_of_a_missing_item_still_costs_a_unit() -> None:
    assert read_units(None, consistent=True) == 1
    assert read_units(None, consistent=False) == 0.5


# Writes: rounded up to 1 KB, of the larger of the item before and after.
@pytest.mark.parametrize(
    ("size", "units"),
    [(500, 1), (KB, 1), (KB + 1, 2), (1536, 2), (3 * KB, 3), (3500, 4), (400 * KB, 400)],
)
def test_write_units_round_up_to_1_kb(size: int, units: int) -> None:
    assert write_units(size) == units


def test_an_update_is_billed_on_the_larger_of_old_and_new() -> None:
    # A touch that moves one timestamp of a 20 KB item pays for 20 KB.
    assert write_units(20 * KB, 20 * KB + 3) == 21
    assert write_units(20 * KB, 200) == 20  # shrinking pays for the old size
    assert write_units(None, 200) == 1  # a put of a new item
    assert write_units(None) == 1  # a delete of nothing still costs a unit


# Item sizes.
def test_strings_count_utf8_bytes_and_names_count_too() -> None:
    assert item_size({"id": {"S": "abc"}}) == 2 + 3
    assert value_size({"S": "é"}) == 2
    assert item_size({"ñ": {"S": "日本"}}) == 2 + 6


def test_binary_counts_its_decoded_bytes() -> None:
    raw = bytes(range(256)) * 3 + b"xy"
    wire = base64.b64encode(raw).decode()
    assert value_size({"B": wire}) == len(raw)


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),
        ("1", 2),  # one significant digit: 1 byte per 2 digits, plus 1
        ("12", 2),
        ("123", 3),
        ("1234", 3),
        ("100", 2),  # trailing zeros are trimmed
        ("0012", 2),  # leading zeros are trimmed
        ("-12", 3),  # a negative number takes one more byte
        ("1.5", 3),  # digit pairs align on the decimal point: 01.50
        ("1700000000", 2),  # 17 followed by zeros: one digit pair
        ("1733133735", 6),
    ],
)
def test_number_sizes(number: str, size: int) -> None:
    assert number_size(number) == size


def test_maps_and_lists_cost_3_bytes_plus_1_per_element() -> None:
    assert value_size({"M": {}}) == 3
    assert value_size({"L": []}) == 3
    assert value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 1 + 2
    assert value_size({"L": [{"S": "xy"}, {"BOOL": True}]}) == 3 + (1 + 2) + (1 + 1)


def test_booleans_and_nulls_are_one_byte() -> None:
    assert item_size({"ok": {"BOOL": False}, "no": {"NULL": True}}) == (2 + 1) + (2 + 1)


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown attribute type"):
        value_size({"Q": "x"})
