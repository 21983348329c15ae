"""A canned-response DynamoDB stub for client CPU benchmarks (run as its own process).

    python -m bench.stub_server STORAGE_KEY

It binds 127.0.0.1 on a free port, prints the port once it is listening, and
answers every request at once from prebuilt bytes chosen by ``x-amz-target``:
GetItem returns a live session item under STORAGE_KEY, UpdateItem a new
version, PutItem and DeleteItem ``{}``. HTTP/1.1 keep-alive (and pipelining),
bodies by Content-Length only; signatures are not checked.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from typing import Any

from cyclicsess import MsgpackCodec
from cyclicsess._item import TableLayout

TABLE = "bench"

#: A realistic small session: ~250 bytes as msgpack.
SESSION: dict[str, Any] = {
    "user_id": 4815162342,
    "username": "ada.lovelace",
    "email": "ada.lovelace@example.com",
    "roles": ["admin", "editor", "reviewer"],
    "csrf_token": "q3Jm0XyZ8vKd2LpW9sTnR4bHc7eF1gAa",
    "locale": "en-GB",
    "timezone": "Europe/London",
    "cart": [{"sku": "BK-1843-AE", "qty": 1}, {"sku": "PC-0001-DE", "qty": 2}],
    "last_page": "/account/orders",
}


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "content-type: application/x-amz-json-1.0\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-amz-crc32: {zlib.crc32(body)}\r\n"
        "x-amzn-requestid: BENCHSTUB0000000000000000000000000000000000000000000\r\n"
        "\r\n"
    )
    return head.encode() + body


def canned_responses(storage_key: str) -> dict[bytes, bytes]:
    """Complete HTTP responses by ``x-amz-target`` value."""
    now = time.time()
    item = TableLayout(TABLE).new_item(
        storage_key,
        MsgpackCodec().encode(SESSION),
        expires=int(now) + 10 * 365 * 86400,
        touched_ms=int(now * 1000),
        created=int(now),
    )
    answers: dict[str, Any] = {
        "GetItem": {"Item": item},
        "UpdateItem": {"Attributes": {"ver": {"N": "2"}}},
        "PutItem": {},
        "DeleteItem": {},
    }
    return {
        f"DynamoDB_20120810.{name}".encode(): _response(json.dumps(answer).encode())
        for name, answer in answers.items()
    }


_UNKNOWN = _response(
    b'{"__type":"com.amazon.coral.service#UnknownOperationException","message":"stub"}',
    "400 Bad Request",
)
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class StubProtocol(asyncio.Protocol):
    """One connection: parses requests from the byte stream and answers each."""

    def __init__(self, responses: dict[bytes, bytes]) -> None:
        self.responses = responses
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        out: list[bytes] = []
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            headers: dict[bytes, bytes] = {}
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get(b"content-length", b"0")
            if not length.isdigit() or b"transfer-encoding" in headers:
                self.transport.write(b"".join(out) + _BAD_REQUEST)
                self.transport.close()
                return
            total = end + 4 + int(length)
            if len(self.buffer) < total:
                break  # wait for the rest of the body
            del self.buffer[:total]
            out.append(self.responses.get(headers.get(b"x-amz-target", b""), _UNKNOWN))
        if out:
            self.transport.write(b"".join(out))


async def serve(storage_key: str) -> None:
    """Listen on a free port of 127.0.0.1 until killed, printing the port first."""
    responses = canned_responses(storage_key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StubProtocol(responses), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} STORAGE_KEY")
    asyncio.run(serve(sys.argv[1]))
