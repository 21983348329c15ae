"""The item layout: keys, parsing and the size estimate."""

from __future__ import annotations

import base64

import pytest

from cyclicsess import DecodeError
from cyclicsess._item import TableLayout


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


def test_size_estimate_covers_the_real_item() -> None:
    layout = TableLayout("t", "pk", "sk")
    blob = b"x" * 1000
    item = layout.new_item(
        "sess:key", blob, expires=2_000_000_000, touched_ms=2 * 10**12, created=2_000_000_000
    )
    exact = sum(len(name) for name in item) + 2 * len("sess:key") + len(blob)
    estimate = layout.item_size("sess:key", blob)
    assert exact < estimate < exact + 64


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
