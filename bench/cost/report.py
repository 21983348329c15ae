"""The cost benchmark's tables: bills, the floor, lifetimes, reads, and the targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.cost import floor
from bench.cost.billing import ITEM_OPS, Tally
from bench.cost.policies import CyclicJsPolicy, CyclicsessPolicy, Policy, fmt_duration
from bench.cost.traces import Trace, summary
from tests.harness import markdown_table, percentile

#: Targets: cyclicsess within this of the floor on every trace, and at most this
#: share of the cyclic store's write units on the engaged trace.
FLOOR_TARGET = 1.1
ENGAGED_TARGET = 0.1
SWEEP_DIVISORS = (2880, 288, 60, 20, 12, 4, 2)


@dataclass(frozen=True)
class Prices:
    """On-demand prices, $ per million request units, and where they come from."""

    wru: float
    rru: float
    source: str
    date: str

    def dollars_per_million(self, tally: Tally, requests: int) -> float:
        return (tally.wcu * self.wru + tally.rcu * self.rru) / max(1, requests)


def units(value: float) -> str:
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def _span(bounds: list[float]) -> str:
    if bounds[0] == math.inf:
        return "-"
    return f"{fmt_duration(bounds[0])} / {fmt_duration(bounds[1])}"


def cross_check(policies: Sequence[Policy]) -> str:
    """What dynalite's reported capacity and the shadow items say about our arithmetic."""
    tallies = [policy.client.tally for policy in policies]
    checked = sum(t.checked for t in tallies)
    disagreements = [d for t in tallies for d in t.disagreements]
    shadow = sum(t.shadow_checked for t in tallies)
    shadow_bad = sum(t.shadow_mismatches for t in tallies)
    verdict = (
        "agree on every call" if not disagreements else "DISAGREE: " + "; ".join(disagreements)
    )
    return (
        f"Units are computed from item sizes by DynamoDB's rules (`cyclicsess._capacity`, "
        f"unit-tested against the Developer Guide's examples) and compared with dynalite's "
        f"ReturnConsumedCapacity: {checked:,} calls compared, {verdict}; "
        f"{sum(t.unreported for t in tallies):,} failed conditional writes had no units "
        f"reported (billed on the existing item). Shadow copies of the items matched "
        f"{shadow - shadow_bad:,} of {shadow:,} GetItem answers."
    )


def trace_report(trace: Trace, policies: Sequence[Policy], prices: Prices) -> str:
    """Every table of one trace."""
    requests = trace.requests
    cyclic = next(p for p in policies if isinstance(p, CyclicJsPolicy))
    base = next(p for p in policies if isinstance(p, CyclicsessPolicy))
    out = [f"## The {trace.name} trace\n", summary(trace) + "\n"]
    sizes = base.client.tally.written_sizes
    if sizes:
        out.append(
            f"cyclicsess items written (heads and data items): median "
            f"{statistics.median(sizes):,.0f} B, p90 {percentile(sizes, 0.9):,.0f} B, max "
            f"{max(sizes):,} B.\n"
        )
    rows = []
    for policy in policies:
        tally = policy.client.tally
        floor_wcu = floor.floor_units(base.events, policy.interval_s)
        two_items = floor.two_item_floor_units(base.events, policy.interval_s)
        rows.append(
            [
                policy.name,
                *(f"{tally.calls[op]:,}" for op in ITEM_OPS),
                units(tally.rcu),
                units(tally.wcu),
                units(tally.wcu_by_purpose["touch"]),
                f"${prices.dollars_per_million(tally, requests):.3f}",
                f"{tally.wcu / cyclic.client.tally.wcu:.3f}",
                f"{floor_wcu:,}",
                f"{tally.wcu / floor_wcu:.2f}",
                f"{tally.wcu / two_items:.2f}",
            ]
        )
    out.append(f"### Requests to DynamoDB, capacity and cost ({requests:,} requests)\n")
    header = ["policy", *ITEM_OPS, "RRU", "WRU", "of which touches", "$ per million requests"]
    header += ["WRU vs cyclic store", "floor WRU", "WRU vs floor", "vs two-item floor"]
    out.append(markdown_table(header, rows))
    out.append(
        "\nThe floor of a policy: each create, change of data and logout written once at "
        "the data's encoded size (msgpack, compressed when worth it), plus one 1-unit touch "
        "per touch interval of activity: the least a store with the same lifetime bound can "
        "write. No single item over 1 KB can be touched for one unit: the two-item floor adds "
        "the one unit a store pays per write of data kept apart from a 1 KB head.\n"
    )
    purposes = ("login", "save", "touch", "logout", "read")
    rows = [
        [p.name, *(units(p.client.tally.wcu_by_purpose[name]) for name in purposes)]
        for p in policies
    ]
    out.append("### Write units by what they were for\n")
    out.append(
        markdown_table(
            ["policy", "login", "save (data changed)", "touch", "logout", "deletes on read"],
            rows,
        )
    )
    out.append(reads_table(trace, policies))
    out.append(lifetime_table(policies))
    out.append(sweep_table(trace, base, cyclic))
    return "\n".join(out)


def reads_table(trace: Trace, policies: Sequence[Policy]) -> str:
    rows = []
    for policy in policies:
        tally = policy.client.tally
        loads = max(1, tally.calls_by_purpose["read:GetItem"])
        rows.append(
            [
                policy.name,
                f"{tally.calls['GetItem'] / max(1, trace.requests):.2f}",
                f"{tally.rcu / loads:.2f}",
            ]
        )
    return "\n### Reads\n\n" + markdown_table(
        ["policy", "GetItem per request", "RRU per load"], rows
    )


def lifetime_table(policies: Sequence[Policy]) -> str:
    rows = [
        [
            p.name,
            p.rule,
            p.bound,
            _span(p.life.final),
            _span(p.life.every),
            f"{p.life.expired:,}",
            f"{p.life.lost:,}",
        ]
        for p in policies
    ]
    return (
        "\n### Session lifetime error\n\n"
        "e = (expires stored after a request) - (that request's time + ttl): negative means "
        "the session ends before ttl has passed since the user's last request.\n\n"
        + markdown_table(
            [
                "policy",
                "renews expiry",
                "bound",
                "at trace end, min / max",
                "after every request, min / max",
                "expired (break > ttl)",
                "lost",
            ],
            rows,
            left=3,
        )
    )


def sweep_table(trace: Trace, base: CyclicsessPolicy, cyclic: Policy) -> str:
    """cyclicsess's write units under other touch intervals, from the recorded events."""
    tally = base.client.tally
    fixed = tally.wcu - tally.wcu_by_purpose["touch"]
    modelled = floor.touches(base.events, base.interval_s)
    measured = (tally.wcu_by_purpose["touch"], tally.calls_by_purpose["touch:UpdateItem"])
    agrees = (modelled.units, modelled.touches) == measured
    rows = []
    for interval in floor.what_if_intervals(trace.ttl_s, SWEEP_DIVISORS):
        model = floor.touches(base.events, interval)
        total = fixed + model.units
        rows.append(
            [
                "never" if interval == math.inf else fmt_duration(interval),
                f"{model.touches:,}",
                f"{model.units:,}",
                f"{total:,}",
                f"{total / cyclic.client.tally.wcu:.3f}",
                f"{total / floor.floor_units(base.events, interval):.2f}",
                "unbounded" if interval == math.inf else fmt_duration(model.worst_s),
            ]
        )
    check = "yes" if agrees else f"NO (model {modelled.units}/{modelled.touches}, {measured})"
    return (
        f"\n### What-if: cyclicsess by touch_interval ({base.name})\n\n"
        f"Writes other than touches ({fixed:,} WRU) do not depend on the interval; touches "
        f"are re-decided from the recorded requests and billed on the recorded head sizes. "
        f"The model reproduces the replay's touches: {check}.\n\n"
        + markdown_table(
            [
                "touch_interval",
                "touches",
                "touch WRU",
                "total WRU",
                "vs cyclic store",
                "vs floor",
                "earliest end on the trace",
            ],
            rows,
        )
    )


def targets(results: Sequence[tuple[Trace, Sequence[Policy]]]) -> str:
    """The issue's targets, met or not, with the figures."""
    lines = ["## Targets\n"]
    for trace, policies in results:
        base = next(p for p in policies if isinstance(p, CyclicsessPolicy))
        cyclic = next(p for p in policies if isinstance(p, CyclicJsPolicy))
        wcu = base.client.tally.wcu
        vs_floor = wcu / floor.floor_units(base.events, base.interval_s)
        vs_two = wcu / floor.two_item_floor_units(base.events, base.interval_s)
        verdict = "MET" if vs_floor <= FLOOR_TARGET else "NOT MET"
        lines.append(
            f"- {trace.name}: {base.name} writes {vs_floor:.2f}x its floor (target <= "
            f"{FLOOR_TARGET}x): {verdict}; {vs_two:.2f}x the two-item floor."
        )
        ratio = wcu / cyclic.client.tally.wcu
        if trace.name == "engaged":
            verdict = "MET" if ratio <= ENGAGED_TARGET else "NOT MET"
            lines.append(
                f"- {trace.name}: {ratio:.3f}x the cyclic store's write units (target <= "
                f"{ENGAGED_TARGET}): {verdict}."
            )
        else:
            lines.append(f"- {trace.name}: {ratio:.3f}x the cyclic store's write units.")
    return "\n".join(lines)


def report(
    results: Sequence[tuple[Trace, Sequence[Policy]]], prices: Prices, url: str, seconds: float
) -> str:
    """The whole report: prices, the cross-check, each trace, the targets."""
    policies = [p for _, trace_policies in results for p in trace_policies]
    out = [
        "# DynamoDB cost of session-store policies\n",
        f"Replayed against dynalite at {url} with a virtual clock, one fresh table per policy "
        f"and trace, through each store's real request flow (cyclicsess: `RequestSession`, "
        f"as every adapter runs it); {seconds:.0f} s in all.\n",
        f"Prices: ${prices.wru:g} per million write request units, ${prices.rru:g} per million "
        f"read request units ({prices.source}, {prices.date}); the ratios do not depend on "
        f"prices.\n",
        cross_check(policies) + "\n",
    ]
    out += [trace_report(trace, trace_policies, prices) for trace, trace_policies in results]
    out.append(targets(results))
    out.append(
        "\nReplay time per policy: "
        + "; ".join(f"{t.name}/{p.name} {p.seconds:.0f} s" for t, ps in results for p in ps)
        + ".\n"
    )
    return "\n".join(out)
