"""What to set up around a session table: its least-privilege IAM policy and its templates.

The policy names exactly the DynamoDB actions the store sends (the tests
derive them from the code and compare), for the table and, with a user
index, the index. The templates (CloudFormation, Terraform) define the table
:func:`~cyclicsess.table.ensure_table` creates: on-demand billing, string
keys, TTL on ``expires`` and the keys-only user index.
"""

from __future__ import annotations

import json
from typing import Any

from ._item import EXPIRES, USER_INDEX, TableLayout
from .table import create_table_request

__all__ = [
    "ADMIN_ACTIONS",
    "SESSION_ACTIONS",
    "USER_ACTIONS",
    "cloudformation",
    "iam_policy",
    "terraform",
]

#: What a web app's store sends while serving sessions.
SESSION_ACTIONS = ("DeleteItem", "GetItem", "PutItem", "UpdateItem")
#: What listing and revoking a user's sessions adds (with a user index).
USER_ACTIONS = ("BatchGetItem", "Query")
#: What setting the table up and looking after it sends (ensure-table, stats, purge).
ADMIN_ACTIONS = (
    "CreateTable",
    "DescribeTable",
    "DescribeTimeToLive",
    "Scan",
    "UpdateTable",
    "UpdateTimeToLive",
)


def iam_policy(
    layout: TableLayout, *, region: str = "*", account: str = "*", admin: bool = True
) -> dict[str, Any]:
    """The least-privilege policy document for ``layout``'s table.

    Args:
        layout: the table (and whether it has a user index).
        region: the table's region, or ``*``.
        account: the AWS account id, or ``*``.
        admin: include the statement for setting up and maintaining the table.
    """
    table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{layout.table}"
    session_resources = [table_arn]
    if layout.indexed:
        session_resources.append(f"{table_arn}/index/{USER_INDEX}")
    actions = sorted(SESSION_ACTIONS + (USER_ACTIONS if layout.indexed else ()))
    statements: list[dict[str, Any]] = [
        {
            "Sid": "CyclicsessSessions",
            "Effect": "Allow",
            "Action": [f"dynamodb:{action}" for action in actions],
            "Resource": session_resources,
        }
    ]
    if admin:
        statements.append(
            {
                "Sid": "CyclicsessTableSetup",
                "Effect": "Allow",
                "Action": [f"dynamodb:{action}" for action in ADMIN_ACTIONS],
                "Resource": [table_arn],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _resource_name(table: str) -> str:
    """A template's logical name for the table: letters and digits only."""
    name = "".join(part.capitalize() for part in table.replace("_", "-").split("-") if part)
    name = "".join(ch for ch in name if ch.isalnum())
    return (name or "Sessions") + "Table"


def cloudformation(layout: TableLayout) -> str:
    """A CloudFormation template (YAML) defining the table."""
    request = create_table_request(layout)
    lines = [
        "AWSTemplateFormatVersion: '2010-09-09'",
        f"Description: cyclicsess session table {layout.table}",
        "Resources:",
        f"  {_resource_name(layout.table)}:",
        "    Type: AWS::DynamoDB::Table",
        "    Properties:",
        f"      TableName: {json.dumps(layout.table)}",
        "      BillingMode: PAY_PER_REQUEST",
        "      AttributeDefinitions:",
    ]
    for attribute in request["AttributeDefinitions"]:
        lines += [
            f"        - AttributeName: {json.dumps(attribute['AttributeName'])}",
            f"          AttributeType: {attribute['AttributeType']}",
        ]
    lines.append("      KeySchema:")
    for key in request["KeySchema"]:
        lines += [
            f"        - AttributeName: {json.dumps(key['AttributeName'])}",
            f"          KeyType: {key['KeyType']}",
        ]
    for index in request.get("GlobalSecondaryIndexes", ()):
        lines += [
            "      GlobalSecondaryIndexes:",
            f"        - IndexName: {index['IndexName']}",
            "          KeySchema:",
        ]
        for key in index["KeySchema"]:
            lines += [
                f"            - AttributeName: {json.dumps(key['AttributeName'])}",
                f"              KeyType: {key['KeyType']}",
            ]
        lines += [
            "          Projection:",
            f"            ProjectionType: {index['Projection']['ProjectionType']}",
        ]
    lines += [
        "      TimeToLiveSpecification:",
        f"        AttributeName: {EXPIRES}",
        "        Enabled: true",
    ]
    return "\n".join(lines) + "\n"


def terraform(layout: TableLayout) -> str:
    """A Terraform ``aws_dynamodb_table`` resource (HCL) defining the table."""
    request = create_table_request(layout)
    keys = {key["KeyType"]: key["AttributeName"] for key in request["KeySchema"]}
    lines = [
        f'resource "aws_dynamodb_table" "{_resource_name(layout.table).lower()}" {{',
        f"  name         = {json.dumps(layout.table)}",
        '  billing_mode = "PAY_PER_REQUEST"',
        f"  hash_key     = {json.dumps(keys['HASH'])}",
    ]
    if "RANGE" in keys:
        lines.append(f"  range_key    = {json.dumps(keys['RANGE'])}")
    for attribute in request["AttributeDefinitions"]:
        lines += [
            "",
            "  attribute {",
            f"    name = {json.dumps(attribute['AttributeName'])}",
            f'    type = "{attribute["AttributeType"]}"',
            "  }",
        ]
    for index in request.get("GlobalSecondaryIndexes", ()):
        hash_key = next(k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH")
        lines += [
            "",
            "  global_secondary_index {",
            f'    name            = "{index["IndexName"]}"',
            f"    hash_key        = {json.dumps(hash_key)}",
            f'    projection_type = "{index["Projection"]["ProjectionType"]}"',
            "  }",
        ]
    lines += [
        "",
        "  ttl {",
        f'    attribute_name = "{EXPIRES}"',
        "    enabled        = true",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
