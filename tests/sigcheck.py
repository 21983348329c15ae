"""SigV4 checked as AWS checks it, with botocore's signer: for test servers on loopback.

The server rebuilds the canonical request from what it received (the path as
sent, the headers the client said it signed, the body) and recomputes the
signature with the secret key of the access key id the request names.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def _fields(authorization: str) -> dict[str, str]:
    _, _, rest = authorization.partition(" ")
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    return fields


def signature_problem(request: web.Request, body: bytes, secrets: dict[str, str]) -> str | None:
    """Why the request's signature is wrong (AWS's words), or None if it is right."""
    fields = _fields(request.headers.get("authorization", ""))
    try:
        access_key, _date, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "Authorization header requires Credential, SignedHeaders and Signature"
    if access_key not in secrets:
        return "The security token included in the request is invalid."
    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"http://{request.headers.get('host', '')}{request.rel_url.raw_path}"
    aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws_request.context["timestamp"] = request.headers.get("x-amz-date", "")
    auth = SigV4Auth(Credentials(access_key, secrets[access_key]), service, region)
    canonical = auth.canonical_request(aws_request)
    expected = auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, signature):
        return (
            "The request signature we calculated does not match the signature you provided. "
            f"The canonical request was:\n{canonical}"
        )
    return None
