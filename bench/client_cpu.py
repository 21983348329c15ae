"""Client CPU per DynamoDB call: cyclicsess vs its peers vs a lean floor.

    python -m bench.client_cpu [--quick] [--out FILE]
    .venv-bench/bin/python -m bench.client_cpu   # with the aioboto3 and aiodynamo rows

A canned-response stub (bench/stub_server.py) runs as a separate process on
127.0.0.1, so ``time.process_time()`` here counts the client's CPU only. Each
cell (client, op, calls in flight) is measured in several interleaved rounds
after a warm-up; the table shows the medians. Rows (bench/peers.py has the
clients; each makes the store's requests with the store's semantics):

- ``cyclicsess``: ``SessionStore.get/set/touch`` (touch_interval 0: one UpdateItem);
- ``aiobotocore``: a default client making the same requests (get decodes the msgpack);
- ``aioboto3``: the ``Table`` resource making the same requests (needs .venv-bench);
- ``aiodynamo``: its high-level client on aiohttp, same requests (needs .venv-bench);
- ``floor``: one shared aiohttp session POSTing prebuilt bodies, signed per
  request with cyclicsess's SigV4 signer, reading the body bytes, nothing else.

At the end it checks the project's targets at 32 in flight: cyclicsess at most
2x the floor, cheaper than aiodynamo, and at least 3x cheaper than aiobotocore.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiohttp
from yarl import URL

from bench import peers
from bench.peers import (
    ALIVE,
    CODEC,
    REGION,
    SET_EXPRESSION,
    SET_NAMES,
    TOUCH_EXPRESSION,
    TOUCH_NAMES,
    TTL_S,
    Factory,
    Handle,
    Peer,
)
from bench.stub_server import SESSION, TABLE
from cyclicsess import Credentials
from cyclicsess._sigv4 import RequestSigner
from tests.harness import interleaved, started

OPS = ("get", "set", "touch")
IN_FLIGHT = (1, 32)
TARGET_FLOOR_RATIO = 2.0  # cyclicsess CPU per call at most this many times the floor's
TARGET_AIOBOTOCORE_RATIO = 3.0  # and at least this many times cheaper than aiobotocore

Call = Callable[[], Awaitable[Any]]
Cell = tuple[str, str, int]  # client, op, in flight


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


# -- the floor: prebuilt bodies, signed, POSTed, read -----------------------------


def floor_requests(key: str, now: float) -> dict[str, tuple[str, dict[str, Any]]]:
    """The store's three requests for ``key``, as DynamoDB JSON, by op."""
    blob = base64.b64encode(CODEC.encode(SESSION)).decode()
    return {
        "get": ("GetItem", {"TableName": TABLE, "Key": {"id": {"S": key}}, "ConsistentRead": True}),
        "set": (
            "UpdateItem",
            {
                "TableName": TABLE,
                "Key": {"id": {"S": key}},
                "UpdateExpression": SET_EXPRESSION,
                "ConditionExpression": ALIVE,
                "ExpressionAttributeNames": SET_NAMES,
                "ExpressionAttributeValues": {
                    ":now": {"N": str(int(now))},
                    ":d": {"B": blob},
                    ":e": {"N": str(int(now) + TTL_S)},
                    ":t": {"N": str(int(now * 1000))},
                    ":one": {"N": "1"},
                },
                "ReturnValues": "UPDATED_NEW",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        ),
        "touch": (
            "UpdateItem",
            {
                "TableName": TABLE,
                "Key": {"id": {"S": key}},
                "UpdateExpression": TOUCH_EXPRESSION,
                "ConditionExpression": ALIVE,
                "ExpressionAttributeNames": TOUCH_NAMES,
                "ExpressionAttributeValues": {
                    ":now": {"N": str(int(now))},
                    ":e": {"N": str(int(now) + TTL_S)},
                    ":t": {"N": str(int(now * 1000))},
                },
            },
        ),
    }


@asynccontextmanager
async def floor_client(url: str) -> AsyncIterator[Peer]:
    """One shared aiohttp session POSTing prebuilt bodies, each signed, reading the bytes."""
    port = URL(url).port
    signer = RequestSigner(f"127.0.0.1:{port}", REGION)
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64),
        skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
    ) as http:
        bodies: dict[tuple[str, str], tuple[str, bytes]] = {}

        def post(op: str) -> Callable[[Handle], Awaitable[Any]]:
            async def call(handle: Handle) -> bytes:
                prepared = bodies.get((op, handle.key))
                if prepared is None:
                    operation, request = floor_requests(handle.key, time.time())[op]
                    body = json.dumps(request, separators=(",", ":")).encode()
                    prepared = bodies[op, handle.key] = (f"DynamoDB_20120810.{operation}", body)
                target_header, body = prepared
                headers = {"content-type": "application/x-amz-json-1.0"}
                headers["x-amz-target"] = target_header
                amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                signer.sign(credentials, amz_date, headers, body)
                async with http.post(url, data=body, headers=headers) as response:
                    return await response.read()

            return call

        async def create() -> Handle:
            raise NotImplementedError("the floor only replays get/set/touch")

        yield Peer(create=create, get=post("get"), set=post("set"), touch=post("touch"))


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"sanity check failed: {what}")


async def sanity_check(name: str, peer: Peer, handle: Handle) -> None:
    """One call of each op, answered as the stub answers a live session."""
    if name == "floor":
        _expect(b'"Item"' in cast(bytes, await peer.get(handle)), "floor get")
        return
    _expect(await peer.get(handle) == SESSION, f"{name} get")
    _expect(await peer.set(handle) == 2, f"{name} set")
    _expect(await peer.touch(handle) is True, f"{name} touch")


#: The rows, in table order: the available clients, then the floor.
CLIENTS: dict[str, Factory] = {**peers.AVAILABLE, "floor": floor_client}


# -- running it ------------------------------------------------------------------


@contextmanager
def stub_server(key: str) -> Iterator[int]:
    """Start bench/stub_server.py serving ``key``; yield its port; stop it by pid."""
    argv = [sys.executable, "-m", "bench.stub_server", key]
    with started(argv, stdout=subprocess.PIPE, text=True, cwd=peers.ROOT) as process:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"stub server did not start (exit code {process.poll()})")
        yield int(port)


async def run_cells(
    url: str, handle: Handle, calls: int, rounds: int, warmup: int
) -> dict[Cell, tuple[float, float]]:
    """Median (CPU µs/call, calls/s) of every cell over interleaved rounds."""
    async with AsyncExitStack() as stack:
        clients: dict[str, Peer] = {}
        for name, factory in CLIENTS.items():
            clients[name] = await stack.enter_async_context(factory(url))
            await sanity_check(name, clients[name], handle)
        cells = [(name, op, k) for name in clients for op in OPS for k in IN_FLIGHT]
        for name, op, k in cells:
            await measure(partial(clients[name].op(op), handle), warmup, k)
        samples: dict[Cell, list[tuple[float, float]]] = {cell: [] for cell in cells}
        for name, op, k in interleaved(cells, rounds):
            call = partial(clients[name].op(op), handle)
            samples[name, op, k].append(await measure(call, calls, k))
    return {
        cell: (statistics.median(c for c, _ in runs), statistics.median(r for _, r in runs))
        for cell, runs in samples.items()
    }


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def verdicts(results: dict[Cell, tuple[float, float]], k: int = 32) -> list[str]:
    """The project's targets, per op at ``k`` in flight, as a markdown table."""
    lines = [
        f"Targets at {k} in flight (CPU per call):",
        "",
        f"| op | cyclicsess / floor (<= {TARGET_FLOOR_RATIO:g}x) "
        "| cyclicsess / aiodynamo (< 1) "
        f"| aiobotocore / cyclicsess (>= {TARGET_AIOBOTOCORE_RATIO:g}x) | all met |",
        "|---|---|---|---|---|",
    ]
    for op in OPS:
        ours = results["cyclicsess", op, k][0]
        floor = ours / results["floor", op, k][0]
        checks = [floor <= TARGET_FLOOR_RATIO]
        cells = [f"{floor:.2f}x {_verdict(checks[-1])}"]
        if ("aiodynamo", op, k) in results:
            dyn = ours / results["aiodynamo", op, k][0]
            checks.append(dyn < 1)
            cells.append(f"{dyn:.2f} {_verdict(checks[-1])}")
        else:
            cells.append("n/a (aiodynamo not installed)")
        boto = results["aiobotocore", op, k][0] / ours
        checks.append(boto >= TARGET_AIOBOTOCORE_RATIO)
        cells.append(f"{boto:.2f}x {_verdict(checks[-1])}")
        lines.append(f"| {op} | {' | '.join(cells)} | {_verdict(all(checks))} |")
    return lines


def report(
    results: dict[Cell, tuple[float, float]], calls: int, rounds: int, load_before: str
) -> str:
    lines = [
        f"Client CPU per call against a local stub; medians of {rounds} interleaved "
        f"rounds of {calls} calls per cell.",
        peers.versions(),
        peers.machine_note(load_before),
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
    verdict = "within" if ours <= TARGET_FLOOR_RATIO * floor else "ABOVE"
    lines += [
        "",
        f"cyclicsess get at 32 in flight: {ours / floor:.2f}x the floor's CPU per call, "
        f"{verdict} the {TARGET_FLOOR_RATIO:g}x target; aiobotocore/cyclicsess: "
        f"{theirs / ours:.1f}x.",
        "",
        *verdicts(results),
    ]
    if note := peers.missing_note():
        lines += ["", note]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Client CPU per DynamoDB call.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    calls, rounds, warmup = (200, 1, 50) if args.quick else (2000, 5, 200)
    peers.use_fake_credentials()
    load_before = peers.load_average()
    handle = Handle.new()  # the stub answers every key alike; the store reads this one
    with stub_server(handle.key) as port:
        results = asyncio.run(run_cells(f"http://127.0.0.1:{port}", handle, calls, rounds, warmup))
    table = report(results, calls, rounds, load_before)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
