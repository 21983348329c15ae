"""The IAM policy names what the code sends; the templates define what ensure_table creates."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import hcl2
import pytest
import yaml

import cyclicsess
from cyclicsess._item import EXPIRES, TableLayout
from cyclicsess.infra import (
    ADMIN_ACTIONS,
    SESSION_ACTIONS,
    USER_ACTIONS,
    cloudformation,
    iam_policy,
    terraform,
)
from cyclicsess.table import create_table_request

PACKAGE = Path(cyclicsess.__file__).parent
LAYOUTS = [
    TableLayout("sessions"),
    TableLayout("app-table", "pk", "sk", indexed=True),
    TableLayout("t", indexed=True),
]


def operations_the_code_sends() -> set[str]:
    """Every DynamoDB operation named by a string in the package's code (but the policy's own)."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    names = set(model.operation_names)
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "infra.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.add(node.value)
    return found


def test_the_policy_names_every_operation_the_code_sends() -> None:
    sent = operations_the_code_sends()
    assert {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"} <= sent
    assert sent == set(SESSION_ACTIONS) | set(USER_ACTIONS) | set(ADMIN_ACTIONS)
    policy = iam_policy(TableLayout("t", indexed=True))
    named = {a.removeprefix("dynamodb:") for s in policy["Statement"] for a in s["Action"]}
    assert named == sent


def test_the_policy_is_scoped_to_the_table_and_its_index() -> None:
    plain = iam_policy(TableLayout("sessions"), region="eu-west-1", account="123456789012")
    table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/sessions"
    assert plain["Statement"][0]["Resource"] == [table_arn]
    assert "dynamodb:Query" not in plain["Statement"][0]["Action"]  # no index, no query
    indexed = iam_policy(TableLayout("sessions", indexed=True), admin=False)
    (statement,) = indexed["Statement"]
    assert statement["Resource"][1].endswith(":table/sessions/index/by_user")
    assert "dynamodb:CreateTable" not in statement["Action"]
    assert all(s["Effect"] == "Allow" for s in plain["Statement"])


def _cfn_properties(layout: TableLayout) -> dict[str, Any]:
    template = yaml.safe_load(cloudformation(layout))
    (resource,) = template["Resources"].values()
    assert resource["Type"] == "AWS::DynamoDB::Table"
    properties: dict[str, Any] = resource["Properties"]
    return properties


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.table)
def test_the_cloudformation_template_defines_what_ensure_table_creates(
    layout: TableLayout,
) -> None:
    properties = _cfn_properties(layout)
    request = create_table_request(layout)
    for name in ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema"):
        assert properties[name] == request[name]
    assert properties.get("GlobalSecondaryIndexes", []) == request.get("GlobalSecondaryIndexes", [])
    assert properties["TimeToLiveSpecification"] == {"AttributeName": EXPIRES, "Enabled": True}


def test_cfn_lint_accepts_the_template(tmp_path: Path) -> None:
    path = tmp_path / "sessions.yaml"
    path.write_text(cloudformation(TableLayout("app-sessions", indexed=True)))
    lint = Path(sys.executable).parent / "cfn-lint"  # a dev dependency
    done = subprocess.run([str(lint), str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.table)
def test_the_terraform_resource_defines_what_ensure_table_creates(layout: TableLayout) -> None:
    parsed = hcl2.load(io.StringIO(terraform(layout)))
    (resource,) = parsed["resource"]
    ((kind, named),) = resource.items()
    assert kind.strip('"') == "aws_dynamodb_table"
    ((_, table),) = named.items()

    def text(value: Any) -> str:
        return str(value).strip('"')

    request = create_table_request(layout)
    keys = {k["KeyType"]: k["AttributeName"] for k in request["KeySchema"]}
    assert text(table["name"]) == layout.table
    assert text(table["billing_mode"]) == "PAY_PER_REQUEST"
    assert text(table["hash_key"]) == keys["HASH"]
    assert text(table.get("range_key", "")) == keys.get("RANGE", "")
    attributes = [{"AttributeName": text(a["name"]), "AttributeType": text(a["type"])}
                  for a in table["attribute"]]  # fmt: skip
    assert attributes == request["AttributeDefinitions"]
    indexes = [
        (text(i["name"]), text(i["hash_key"]), text(i["projection_type"]))
        for i in table.get("global_secondary_index", [])
    ]
    expected = [
        (i["IndexName"], i["KeySchema"][0]["AttributeName"], i["Projection"]["ProjectionType"])
        for i in request.get("GlobalSecondaryIndexes", [])
    ]
    assert indexes == expected
    (ttl,) = table["ttl"]
    assert text(ttl["attribute_name"]) == EXPIRES and ttl["enabled"] is True
