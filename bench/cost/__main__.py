"""The DynamoDB bill of session-store policies on two traffic traces, in one run.

    python tests/servers.py run --only dynalite -- python -m bench.cost [--quick] [--out FILE]

Each trace (:mod:`bench.cost.traces`) is replayed through each policy
(:mod:`bench.cost.policies`) against dynalite, one fresh table per policy, with
a virtual clock: a day replays in minutes. Every call is billed by DynamoDB's
rules (:mod:`bench.cost.billing`) and compared with the floor
(:mod:`bench.cost.floor`); :mod:`bench.cost.report` prints the tables.
``--quick`` replays a small sample of each trace (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence

from bench.cost.policies import (
    CYCLIC_TOUCH_S,
    CyclicJsPolicy,
    CyclicsessPolicy,
    Policy,
    TouchEveryPolicy,
    WriteEveryPolicy,
)
from bench.cost.report import Prices, report
from bench.cost.traces import Trace, day_trace, engaged_trace
from tests.harness import server_url

PRICE_SOURCE = "https://aws.amazon.com/dynamodb/pricing/on-demand/, us-east-1, standard table class"
PRICE_DATE = "the prices in force since AWS's on-demand price cut of 2024-11-01"

PolicyFactory = Callable[[str, str, int], Policy]
POLICIES: dict[str, PolicyFactory] = {
    "cyclicsess": lambda url, table, ttl: CyclicsessPolicy(url, table, ttl),
    "cyclicsess-30s": lambda url, table, ttl: CyclicsessPolicy(
        url, table, ttl, touch_interval_s=CYCLIC_TOUCH_S
    ),
    "cyclicsess-inline": lambda url, table, ttl: CyclicsessPolicy(
        url, table, ttl, separate_large_data=False
    ),
    "cyclic": CyclicJsPolicy,
    "write-every": WriteEveryPolicy,
    "touch-every": TouchEveryPolicy,
}


async def replay(trace: Trace, url: str, concurrency: int) -> list[Policy]:
    run_id = f"{int(time.time())}-{os.getpid()}"
    results = []
    for name, factory in POLICIES.items():
        policy = factory(url, f"cost-{trace.name}-{name}-{run_id}", trace.ttl_s)
        try:
            await policy.replay(trace, concurrency)
        finally:
            await policy.close()
        print(f"{trace.name}: replayed {policy.name} in {policy.seconds:.1f} s", file=sys.stderr)
        results.append(policy)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on small samples")
    parser.add_argument("--day-users", type=int, default=10_000)
    parser.add_argument("--engaged-users", type=int, default=2_000)
    parser.add_argument("--trace", choices=["day", "engaged", "both"], default="both")
    parser.add_argument("--seed", type=int, default=20250602)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wru-price", type=float, default=0.625, help="$ per million WRU")
    parser.add_argument("--rru-price", type=float, default=0.125, help="$ per million RRU")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.day_users, args.engaged_users = 800, 60
    url = server_url("dynalite", "python -m bench.cost")
    started = time.perf_counter()
    traces = []
    if args.trace in ("day", "both"):
        traces.append(day_trace(args.day_users, args.seed))
    if args.trace in ("engaged", "both"):
        traces.append(engaged_trace(args.engaged_users, args.seed))
    results = [(trace, asyncio.run(replay(trace, url, args.concurrency))) for trace in traces]
    prices = Prices(args.wru_price, args.rru_price, PRICE_SOURCE, PRICE_DATE)
    text = report(results, prices, url, time.perf_counter() - started)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
