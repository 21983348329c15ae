"""The item layout: keys, parsing and the size estimate."""

from __future__ import annotations

import base64

import pytest

from cyclicsess import DecodeError
from cyclicsess._capacity import item_size
from cyclicsess._item import MOVED_TO, VERSION, WRITE_ID, WRITE_ID_LENGTH, TableLayout


def test_key_fills_both_attributes_of_a_single_table_layout() -> None:
    assert TableLayout("t").key("k") == {"id": {"S": "k"}}
    assert TableLayout("t", "pk", "sk").key("k") == {"pk": {"S": "k"}, "sk": {"S": "k"}}


def test_new_item_parses_back() -> None:
    layout = TableLayout("t")
    item = layout.new_item("k", b"\x80", expires=200, touched_ms=100_500, created=100)
    stored = layout.parse(item)
    assert (stored.blob, stored.expires, stored.touched_ms, stored.created, stored.version) == (
        b"\x80",
        200,
        100_500,
        100,
        1,
    )


@pytest.mark.parametrize(
    ("hash_key", "range_key"), [("id", None), ("pk", "sk"), ("clé", "sörtkey")]
)
def test_size_estimate_covers_every_attribute_any_write_adds(
    hash_key: str, range_key: str | None
) -> None:
    layout = TableLayout("t", hash_key, range_key)
    key = "sess:" + "k" * 43
    blob = b"x" * 1000
    item = layout.new_item(
        key, blob, expires=9_999_999_999, touched_ms=9_999_999_999_999, created=9_999_999_999
    )
    item[VERSION] = {"N": "999999999999"}
    item[WRITE_ID] = {"S": "w" * WRITE_ID_LENGTH}  # what set() adds
    item[MOVED_TO] = {"S": "sess:" + "m" * 43}  # what regenerate() adds
    exact = item_size(item)  # DynamoDB's own rule
    estimate = layout.item_size(key, blob)
    assert exact <= estimate < exact + 16


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("touched", "1" + "0" * 30),
        ("expires", "99999999999999"),
        ("created", "-5"),
        ("touched", "-1"),
    ],
)
def test_a_time_out_of_range_makes_the_item_unreadable(name: str, value: str) -> None:
    layout = TableLayout("t")
    item = layout.new_item("k", b"x", expires=1, touched_ms=1, created=1)
    item[name] = {"N": value}
    with pytest.raises(DecodeError, match="between 1970 and 9999"):
        layout.parse(item)


@pytest.mark.parametrize(
    "change",
    [
        lambda item: item.pop("expires"),
        lambda item: item.pop("data"),
        lambda item: item.update(ver={"S": "1"}),
        lambda item: item.update(expires={"N": "soon"}),
        lambda item: item.update(data={"S": "text where bytes belong"}),
        lambda item: item.update(data={"B": "not base64!"}),
        lambda item: item.update(touched=None),
    ],
)
def test_parse_refuses_malformed_items(change: object) -> None:
    layout = TableLayout("t")
    item = layout.new_item("k", b"x", expires=1, touched_ms=1, created=1)
    change(item)  # type: ignore[operator]
    with pytest.raises(DecodeError):
        layout.parse(item)


def test_string_data_layout() -> None:
    layout = TableLayout("t", data_type="S")
    item = layout.new_item("k", b'{"a":1}', expires=1, touched_ms=1, created=1)
    assert item["data"] == {"S": '{"a":1}'}
    assert layout.parse(item).blob == b'{"a":1}'
    assert TableLayout("t").data_value(b"ab") == {"B": base64.b64encode(b"ab").decode()}
