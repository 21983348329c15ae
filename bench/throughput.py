"""End to end against a real dynalite: calls/s, latency and who spends the CPU.

    python tests/servers.py run --only dynalite -- .venv-bench/bin/python -m bench.throughput
        [--quick] [--out FILE]

For cyclicsess and its peers (bench/peers.py: default aiobotocore, the
aioboto3 ``Table`` resource, aiodynamo; the last two need .venv-bench) it
measures get, set and touch at 1 and 32 calls in flight against the dynalite
named in ``CYCLICSESS_TEST_SERVERS``. Each client first creates its own 32
sessions with its own conditional PutItem (cyclicsess then reads one back, so
the items agree); worker i of a cell uses session i, so writes never contend
for one item. Cells run in interleaved rounds after a warm-up.

Per cell: calls/s (median of rounds), p50/p99 latency (all rounds' calls),
client CPU (``time.process_time()`` of this process) and server CPU
(utime + stime of the dynalite process from ``/proc/PID/stat``), per call and
as a share of one core, so the bottleneck shows; and calls/s relative to
cyclicsess in the same run. dynalite is one single-threaded node process: a
server share near 100% means the server is what limits the rate.

Two things the table shows that are not the clients' CPU:

- aiobotocore and aioboto3 pool 10 connections by default: at 32 in flight
  the other 22 calls queue, and some wait for most of a cell (a p99 of
  hundreds of ms; with ``max_pool_connections=64`` it is as low as the others').
- aiodynamo wraps every condition in parentheses; dynalite's expression parser
  spends ~150-250 µs more per request on that (measured with cyclicsess's own
  request, parenthesised), so dynalite's CPU on aiodynamo's writes is higher.
  That is dynalite's cost, not DynamoDB's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

from bench import peers
from bench.peers import Handle, Peer, cpu_seconds, listening_pid
from bench.stub_server import SESSION, TABLE
from cyclicsess import SessionStore
from tests.harness import interleaved, percentile

OPS = ("get", "set", "touch")
IN_FLIGHT = (1, 32)
SESSIONS = 32  # per client: one per worker at 32 in flight

Cell = tuple[str, str, int]  # client, op, in flight


@dataclass
class Samples:
    """What the rounds of one cell measured."""

    rates: list[float] = field(default_factory=list)  # calls/s per round
    client_cpu: list[float] = field(default_factory=list)  # µs per call per round
    server_cpu: list[float] = field(default_factory=list)
    client_share: list[float] = field(default_factory=list)  # of one core
    server_share: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # ms, every call


async def measure(
    peer: Peer, op: str, handles: list[Handle], calls: int, in_flight: int, server: int
) -> tuple[float, float, float, float, float, list[float]]:
    """Run ``calls`` calls ``in_flight`` at a time; rate, CPU and latencies."""
    call = peer.op(op)
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker(handle: Handle, count: int) -> None:
        for _ in range(count):
            start = clock()
            await call(handle)
            latencies.append((clock() - start) * 1e3)

    share, extra = divmod(calls, in_flight)
    gc.collect()
    server_cpu, cpu, wall = cpu_seconds(server), time.process_time(), clock()
    await asyncio.gather(
        *(worker(handles[i % len(handles)], share + (i < extra)) for i in range(in_flight))
    )
    wall = clock() - wall
    cpu, server_cpu = time.process_time() - cpu, cpu_seconds(server) - server_cpu
    return (
        calls / wall,
        cpu / calls * 1e6,
        server_cpu / calls * 1e6,
        cpu / wall,
        server_cpu / wall,
        latencies,
    )


async def prepare(name: str, peer: Peer, check: SessionStore) -> list[Handle]:
    """Create this client's sessions with its own PutItem; check it and the store agree."""
    handles = [await peer.create() for _ in range(SESSIONS)]
    for handle in handles[:2]:
        if await peer.get(handle) != SESSION:
            raise RuntimeError(f"{name}: get did not return the session it created")
        record = await check.get(handle.sid)
        if record is None or record.data != SESSION:
            raise RuntimeError(f"{name}: cyclicsess cannot read the session {name} created")
    version = await peer.set(handles[0])
    if version != 2 or not await peer.touch(handles[0]):
        raise RuntimeError(f"{name}: set/touch of a live session failed ({version})")
    record = await check.get(handles[0].sid)
    if record is None or record.version != 2:
        raise RuntimeError(f"{name}: cyclicsess does not see {name}'s set")
    unknown = Handle.new()
    if await peer.get(unknown) is not None or await peer.touch(unknown):
        raise RuntimeError(f"{name}: an unknown session was found or touched")
    return handles


async def run_cells(
    url: str, server: int, calls: dict[int, int], rounds: int, warmup: int
) -> dict[Cell, Samples]:
    async with AsyncExitStack() as stack:
        check = await stack.enter_async_context(SessionStore(TABLE, endpoint_url=url))
        await check.ensure_table()
        clients: dict[str, tuple[Peer, list[Handle]]] = {}
        for name, factory in peers.AVAILABLE.items():
            peer = await stack.enter_async_context(factory(url))
            clients[name] = (peer, await prepare(name, peer, check))
        cells = [(name, op, k) for name in clients for op in OPS for k in IN_FLIGHT]
        for name, op, k in cells:
            peer, handles = clients[name]
            await measure(peer, op, handles, warmup, k, server)
        samples = {cell: Samples() for cell in cells}
        for name, op, k in interleaved(cells, rounds):
            peer, handles = clients[name]
            rate, cpu, server_cpu, share, server_share, latencies = await measure(
                peer, op, handles, calls[k], k, server
            )
            cell = samples[name, op, k]
            cell.rates.append(rate)
            cell.client_cpu.append(cpu)
            cell.server_cpu.append(server_cpu)
            cell.client_share.append(share)
            cell.server_share.append(server_share)
            cell.latencies += latencies
    return samples


def report(
    samples: dict[Cell, Samples],
    calls: dict[int, int],
    rounds: int,
    server: int,
    url: str,
    load_before: str,
) -> str:
    names = list(dict.fromkeys(name for name, _, _ in samples))
    med = statistics.median
    lines = [
        f"End to end against dynalite ({url}, pid {server}) on this machine; "
        f"{rounds} interleaved rounds of {calls[1]} calls (1 in flight) or {calls[32]} "
        "(32 in flight) per cell; calls/s and CPU are medians of rounds, latency over "
        "all calls. CPU share is of one core.",
        peers.versions(),
        peers.machine_note(load_before),
        "",
        "| client | op | in flight | calls/s | vs cyclicsess | p50 ms | p99 ms "
        "| client CPU µs/call | server CPU µs/call | client core | server core |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for op in OPS:
            for k in IN_FLIGHT:
                cell = samples[name, op, k]
                rate = med(cell.rates)
                ours = med(samples["cyclicsess", op, k].rates)
                ordered = sorted(cell.latencies)
                lines.append(
                    f"| {name} | {op} | {k} | {rate:.0f} | {rate / ours:.2f}x "
                    f"| {percentile(ordered, 0.5):.2f} | {percentile(ordered, 0.99):.2f} "
                    f"| {med(cell.client_cpu):.0f} | {med(cell.server_cpu):.0f} "
                    f"| {med(cell.client_share):.0%} | {med(cell.server_share):.0%} |"
                )
    lines += ["", *bottlenecks(samples, names)]
    if note := peers.missing_note():
        lines += ["", note]
    return "\n".join(lines)


def bottlenecks(samples: dict[Cell, Samples], names: list[str]) -> list[str]:
    """One line per client at 32 in flight: whose CPU limits the rate."""
    lines = ["At 32 in flight (all ops pooled), CPU per call, client : server:"]
    for name in names:
        client = statistics.median(x for op in OPS for x in samples[name, op, 32].client_cpu)
        server = statistics.median(x for op in OPS for x in samples[name, op, 32].server_cpu)
        side = "the client" if client > server else "the server (dynalite)"
        lines.append(
            f"- {name}: {client:.0f} : {server:.0f} µs ({client / (client + server):.0%} "
            f"client) — {side} spends more"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~15 s)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.quick:
        calls, rounds, warmup = {1: 100, 32: 200}, 1, 30
    else:
        calls, rounds, warmup = {1: 400, 32: 1000}, 3, 100
    peers.use_fake_credentials()
    url = peers.dynalite_url()
    port = URL(url).port
    assert port is not None
    server = listening_pid(port)
    load_before = peers.load_average()
    samples = asyncio.run(run_cells(url, server, calls, rounds, warmup))
    table = report(samples, calls, rounds, server, url, load_before)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
