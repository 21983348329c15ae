"""Client CPU per DynamoDB call: cyclicsess vs default aiobotocore vs a lean floor.

    python bench/client_cpu.py [--quick] [--out FILE]

A canned-response stub (bench/stub_server.py) runs as a separate process on
127.0.0.1, so ``time.process_time()`` here counts the client's CPU only. Each
cell (client, op, calls in flight) is measured in several interleaved rounds
after a warm-up; the table shows the medians. Rows:

- ``cyclicsess``: ``SessionStore.get/set/touch`` (touch_interval 0: one UpdateItem);
- ``aiobotocore``: a default client making the same requests (get decodes the msgpack);
- ``floor``: one shared aiohttp session POSTing prebuilt bodies, signed per
  request with cyclicsess's SigV4 signer, reading the body bytes, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiobotocore.session import get_session
from stub_server import SESSION, TABLE

from cyclicsess import Credentials, MsgpackCodec, SessionStore, new_session_id
from cyclicsess._sigv4 import RequestSigner

REGION = "us-east-1"
OPS = ("get", "set", "touch")
IN_FLIGHT = (1, 32)
TARGET_RATIO = 2.0
ALIVE = "attribute_exists(#k) AND #e > :now"

Call = Callable[[], Awaitable[Any]]
Cell = tuple[str, str, int]  # client, op, in flight


class Target(NamedTuple):
    """The stub server and the one session it serves."""

    url: str
    port: int
    sid: str
    key: str  # the sid's storage key


# -- the measurement -----------------------------------------------------------


async def measure(call: Call, calls: int, in_flight: int) -> tuple[float, float]:
    """CPU µs per call and calls/s of ``calls`` calls made ``in_flight`` at a time."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    share, extra = divmod(calls, in_flight)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


# -- the requests, as cyclicsess sends them -------------------------------------


def get_request(key: str) -> dict[str, Any]:
    return {"TableName": TABLE, "Key": {"id": {"S": key}}, "ConsistentRead": True}


def set_request(key: str, now: float, data: dict[str, Any]) -> dict[str, Any]:
    """The store's ``set`` UpdateItem; ``data`` is the wire value of the blob."""
    return {
        "TableName": TABLE,
        "Key": {"id": {"S": key}},
        "UpdateExpression": "SET #d = :d, #e = :e, #t = :t, #v = #v + :one",
        "ConditionExpression": ALIVE,
        "ExpressionAttributeNames": {
            "#k": "id",
            "#e": "expires",
            "#d": "data",
            "#t": "touched",
            "#v": "ver",
        },
        "ExpressionAttributeValues": {
            ":now": {"N": str(int(now))},
            ":d": data,
            ":e": {"N": str(int(now + 86400))},
            ":t": {"N": str(int(now * 1000))},
            ":one": {"N": "1"},
        },
        "ReturnValues": "UPDATED_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def touch_request(key: str, now: float) -> dict[str, Any]:
    return {
        "TableName": TABLE,
        "Key": {"id": {"S": key}},
        "UpdateExpression": "SET #e = :e, #t = :t",
        "ConditionExpression": ALIVE,
        "ExpressionAttributeNames": {"#k": "id", "#e": "expires", "#t": "touched"},
        "ExpressionAttributeValues": {
            ":now": {"N": str(int(now))},
            ":e": {"N": str(int(now + 86400))},
            ":t": {"N": str(int(now * 1000))},
        },
    }


# -- the clients: each yields one zero-argument call per op -----------------------


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"sanity check failed: {what}")


@asynccontextmanager
async def cyclicsess_client(target: Target) -> AsyncIterator[dict[str, Call]]:
    store = SessionStore(TABLE, endpoint_url=target.url, region=REGION, touch_interval=timedelta(0))
    async with store:
        record = await store.get(target.sid)
        _expect(record is not None and record.data == SESSION, "cyclicsess get")
        _expect(await store.set(target.sid, SESSION) == 2, "cyclicsess set")
        _expect(await store.touch(target.sid), "cyclicsess touch")
        yield {
            "get": partial(store.get, target.sid),
            "set": partial(store.set, target.sid, SESSION),
            "touch": partial(store.touch, target.sid),
        }


@asynccontextmanager
async def aiobotocore_client(target: Target) -> AsyncIterator[dict[str, Call]]:
    codec = MsgpackCodec()
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=target.url,
        region_name=REGION,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    ) as client:

        async def get() -> dict[str, Any]:
            answer = await client.get_item(**get_request(target.key))
            return codec.decode(answer["Item"]["data"]["B"])

        async def set_() -> object:
            blob = codec.encode(SESSION)
            return await client.update_item(**set_request(target.key, time.time(), {"B": blob}))

        async def touch() -> object:
            return await client.update_item(**touch_request(target.key, time.time()))

        _expect(await get() == SESSION, "aiobotocore get")
        yield {"get": get, "set": set_, "touch": touch}


@asynccontextmanager
async def floor_client(target: Target) -> AsyncIterator[dict[str, Call]]:
    signer = RequestSigner(f"127.0.0.1:{target.port}", REGION)
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    blob = base64.b64encode(MsgpackCodec().encode(SESSION)).decode()
    now = time.time()
    requests = {
        "get": ("GetItem", get_request(target.key)),
        "set": ("UpdateItem", set_request(target.key, now, {"B": blob})),
        "touch": ("UpdateItem", touch_request(target.key, now)),
    }
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64),
        skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
    ) as http:

        def post(operation: str, request: dict[str, Any]) -> Call:
            body = json.dumps(request, separators=(",", ":")).encode()
            target_header = f"DynamoDB_20120810.{operation}"

            async def call() -> bytes:
                headers = {"content-type": "application/x-amz-json-1.0"}
                headers["x-amz-target"] = target_header
                amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                signer.sign(credentials, amz_date, headers, body)
                async with http.post(target.url, data=body, headers=headers) as response:
                    return await response.read()

            return call

        calls = {op: post(*request) for op, request in requests.items()}
        _expect(b'"Item"' in await calls["get"](), "floor get")
        yield calls


CLIENTS = {
    "cyclicsess": cyclicsess_client,
    "aiobotocore": aiobotocore_client,
    "floor": floor_client,
}


# -- running it ------------------------------------------------------------------


@contextmanager
def stub_server(key: str) -> Iterator[int]:
    """Start bench/stub_server.py serving ``key``; yield its port; stop it by pid."""
    script = Path(__file__).with_name("stub_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), key], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"stub server did not start (exit code {process.poll()})")
        yield int(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_cells(
    target: Target, calls: int, rounds: int, warmup: int
) -> dict[Cell, tuple[float, float]]:
    """Median (CPU µs/call, calls/s) of every cell over interleaved rounds."""
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(factory(target))
            for name, factory in CLIENTS.items()
        }
        cells = [(name, op, k) for name in clients for op in OPS for k in IN_FLIGHT]
        for name, op, k in cells:
            await measure(clients[name][op], warmup, k)
        samples: dict[Cell, list[tuple[float, float]]] = {cell: [] for cell in cells}
        order = random.Random(0)
        for _ in range(rounds):
            order.shuffle(cells)
            for name, op, k in cells:
                samples[name, op, k].append(await measure(clients[name][op], calls, k))
    return {
        cell: (statistics.median(c for c, _ in runs), statistics.median(r for _, r in runs))
        for cell, runs in samples.items()
    }


def report(results: dict[Cell, tuple[float, float]], calls: int, rounds: int) -> str:
    lines = [
        f"Client CPU per call against a local stub; medians of {rounds} interleaved "
        f"rounds of {calls} calls per cell.",
        "",
        "| client | op | in flight | CPU µs/call | calls/s | CPU vs floor |",
        "|---|---|---|---|---|---|",
    ]
    for name in CLIENTS:
        for op in OPS:
            for k in IN_FLIGHT:
                cpu, rate = results[name, op, k]
                ratio = cpu / results["floor", op, k][0]
                lines.append(f"| {name} | {op} | {k} | {cpu:.0f} | {rate:.0f} | {ratio:.2f}x |")
    ours, floor = results["cyclicsess", "get", 32][0], results["floor", "get", 32][0]
    theirs = results["aiobotocore", "get", 32][0]
    verdict = "within" if ours <= TARGET_RATIO * floor else "ABOVE"
    lines += [
        "",
        f"cyclicsess get at 32 in flight: {ours / floor:.2f}x the floor's CPU per call, "
        f"{verdict} the {TARGET_RATIO:g}x target; aiobotocore/cyclicsess: {theirs / ours:.1f}x.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Client CPU per DynamoDB call.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    calls, rounds, warmup = (200, 1, 50) if args.quick else (2000, 5, 200)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    sid = new_session_id()
    key = SessionStore(TABLE).storage_key(sid)  # default key hashing, as in the benchmarked store
    with stub_server(key) as port:
        target = Target(f"http://127.0.0.1:{port}", port, sid, key)
        results = asyncio.run(run_cells(target, calls, rounds, warmup))
    table = report(results, calls, rounds)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
