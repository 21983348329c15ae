"""The store's requests as payloads: every write is conditional in the right way."""

from __future__ import annotations

import re

from cyclicsess._item import TableLayout
from cyclicsess._requests import Requests

NOW = 1_800_000_000.25
REQUESTS = Requests(TableLayout("t"))
WITH_LIFETIME = Requests(TableLayout("t", "pk", "sk"), absolute_lifetime_s=3600)


def names_used(payload: dict[str, object], expression: str) -> set[str]:
    return set(re.findall(r"[#:][A-Za-z_]+", str(payload[expression])))


def test_every_placeholder_is_defined_and_every_definition_used() -> None:
    payloads = [
        REQUESTS.save("k", b"d", now=NOW, ttl_s=60, write_id="w", version=3),
        REQUESTS.save("k", b"d", now=NOW, ttl_s=60, write_id="w", version=None),
        REQUESTS.save("k", b"", now=NOW, ttl_s=60, write_id="w", version=2, data_ref="k#t"),
        WITH_LIFETIME.touch_renewed("k", now=NOW, ttl_s=60, data_ref="k#t", data_expires=9),
        REQUESTS.renew_data("k#t", expires=9),
        WITH_LIFETIME.move_out("k", now=NOW, ttl_s=60, version=2, data_ref="k#t", data_expires=9),
        WITH_LIFETIME.touch("k", now=NOW, ttl_s=60, margin_s=60),
        WITH_LIFETIME.end_and_mark("k", now=NOW, moved_to="k2"),
        WITH_LIFETIME.delete_if_ended("k", now=NOW),
        REQUESTS.create({"id": {"S": "k"}}),
    ]
    for payload in payloads:
        used: set[str] = set()
        for expression in ("UpdateExpression", "ConditionExpression"):
            if expression in payload:
                used |= names_used(payload, expression)
        defined = set(payload.get("ExpressionAttributeNames", {})) | set(
            payload.get("ExpressionAttributeValues", {})
        )
        assert used == defined, payload


def test_a_save_applies_once_to_a_live_item_of_the_version_read() -> None:
    payload = REQUESTS.save("k", b"d", now=NOW, ttl_s=60, write_id="w1", version=3)
    condition = payload["ConditionExpression"]
    assert "attribute_exists(#k)" in condition
    assert "#e > :now" in condition
    assert "#w <> :w" in condition  # a retry meets its own write and does nothing
    assert "#v = :ver" in condition
    values = payload["ExpressionAttributeValues"]
    assert values[":ver"] == {"N": "3"}
    assert values[":w"] == {"S": "w1"}
    assert values[":now"] == {"N": "1800000000"}
    assert values[":e"] == {"N": "1800000060"}
    assert values[":t"] == {"N": "1800000000250"}
    assert payload["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    unversioned = REQUESTS.save("k", b"d", now=NOW, ttl_s=60, write_id="w1", version=None)
    assert "#v = :ver" not in unversioned["ConditionExpression"]


def test_a_touch_writes_the_lifetime_only_and_never_revives() -> None:
    payload = WITH_LIFETIME.touch("k", now=NOW, ttl_s=60, margin_s=60)
    assert payload["UpdateExpression"] == "SET #e = :e, #t = :t ADD #n :one"  # counts touches
    assert payload["ConditionExpression"] == (
        "attribute_exists(#k) AND #e > :now AND #c > :oldest"
        " AND (attribute_not_exists(#x) OR #x >= :need)"
    )
    assert payload["ExpressionAttributeValues"][":need"] == {"N": str(int(NOW + 120))}
    assert payload["ExpressionAttributeValues"][":oldest"] == {"N": str(int(NOW - 3600))}
    assert payload["Key"] == {"pk": {"S": "k"}, "sk": {"S": "k"}}


def test_a_purge_delete_applies_only_to_an_item_still_ended() -> None:
    payload = WITH_LIFETIME.delete_if_ended("k", now=NOW)
    assert payload["ConditionExpression"] == "(#e <= :now OR #c <= :oldest)"
    assert "ConditionExpression" not in REQUESTS.delete("k")
    assert REQUESTS.delete("k")["ReturnValues"] == "ALL_OLD"  # to find its data item


def test_a_save_swaps_between_inline_data_and_a_data_item() -> None:
    inline = REQUESTS.save("k", b"d", now=NOW, ttl_s=60, write_id="w", version=1)
    assert inline["UpdateExpression"].startswith("SET #d = :d")
    assert inline["UpdateExpression"].endswith("REMOVE #n, #r, #x")  # the touch count too
    external = REQUESTS.save("k", b"", now=NOW, ttl_s=60, write_id="w", version=1, data_ref="k#t")
    assert external["UpdateExpression"].startswith("SET #r = :r, #x = :x")
    assert external["UpdateExpression"].endswith("REMOVE #n, #d")
    assert ":d" not in external["ExpressionAttributeValues"]
