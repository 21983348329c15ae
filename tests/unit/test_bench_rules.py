"""The cost benchmark's own rules: its replay of UpdateItem and its floor."""

from __future__ import annotations

import math

from bench.cost.billing import apply_update
from bench.cost.floor import floor_units, touches, two_item_floor_units

KEY = {"id": {"S": "s1"}}


def test_apply_update_sets_adds_and_removes() -> None:
    old = {**KEY, "e": {"N": "10"}, "n": {"N": "2"}, "x": {"S": "gone"}, "v": {"N": "1"}}
    payload = {
        "UpdateExpression": "SET #e = :e, #v = #v + :one ADD #n :one REMOVE #x",
        "ExpressionAttributeNames": {"#e": "e", "#n": "n", "#x": "x", "#v": "v"},
        "ExpressionAttributeValues": {":e": {"N": "99"}, ":one": {"N": "1"}},
    }
    assert apply_update(old, KEY, payload) == {
        **KEY,
        "e": {"N": "99"},
        "n": {"N": "3"},
        "v": {"N": "2"},
    }


def test_apply_update_on_a_missing_item_starts_from_the_key() -> None:
    payload = {
        "UpdateExpression": "SET a = :a ADD n :one",
        "ExpressionAttributeValues": {":a": {"S": "x"}, ":one": {"N": "1"}},
    }
    assert apply_update(None, KEY, payload) == {**KEY, "a": {"S": "x"}, "n": {"N": "1"}}


# One user: a create of 3 units at 0 s, unchanged requests every 20 s, a logout.
EVENTS = {
    1: [("w", 0, 3)]
    + [("t", t * 1000, 5000) for t in range(20, 201, 20)]
    + [("x", 210_000, 1)]
}


def test_touches_happen_once_per_interval_of_activity() -> None:
    every_minute = touches(EVENTS, 60.0)
    assert every_minute.touches == 3  # at 60, 120 and 180 s
    assert every_minute.units == 3 * 5  # a 5,000-byte head: 5 units each
    assert every_minute.worst_s == -40.0  # a request 40 s after a write renews nothing
    assert touches(EVENTS, 60.0, one_unit=True).units == 3
    assert touches(EVENTS, 0.0).touches == 10
    assert touches(EVENTS, math.inf).touches == 0


def test_the_floor_is_every_data_write_plus_one_unit_per_touch() -> None:
    assert floor_units(EVENTS, 60.0) == 3 + 1 + 3
    # Two items: the create writes head and data (one more unit); the logout is small.
    assert two_item_floor_units(EVENTS, 60.0) == (3 + 1) + 1 + 3
