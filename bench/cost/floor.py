"""The least a store can write on a trace, and what other touch intervals would cost.

The floor of a lifetime bound: a store that renews a session's expiry at most
every ``interval`` of activity (so a session ends no more than that early)
must write each create, each change of data and each logout at least once,
at the data's encoded size, plus one touch of one write unit per
``interval`` of activity. No single item over 1 KB can be touched for one
unit, so a store that keeps a large session's data apart from a small head
pays one unit more per write of that data: :func:`two_item_floor_units`.
Both are computed from the events the cyclicsess replay recorded: writes of
data with their encoded size, and the unchanged requests at which a touch
could be made.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.cost.policies import Event
from cyclicsess._capacity import write_units


@dataclass
class Touches:
    interval_s: float
    touches: int
    units: int  # write units of those touches
    worst_s: float  # the earliest a session could end, relative to last request + ttl


def touches(
    events: Mapping[int, Iterable[Event]], interval_s: float, *, one_unit: bool = False
) -> Touches:
    """Re-decide the touches of the recorded requests under ``interval_s``.

    A touch happens when ``interval_s`` passed since the last write or touch;
    it costs the head's recorded size in write units, or one unit with
    ``one_unit`` (the floor's touch).
    """
    count = units = 0
    worst = 0.0
    limit_ms = interval_s * 1000
    for user_events in events.values():
        last: int | None = None
        for kind, t_ms, size in user_events:
            if kind == "w":
                last = t_ms
            elif kind == "x":
                last = None
            elif last is not None:
                if t_ms - last >= limit_ms:
                    count += 1
                    units += 1 if one_unit else write_units(size)
                    last = t_ms
                else:
                    worst = min(worst, (last - t_ms) / 1000)
    return Touches(interval_s, count, units, worst)


def data_writes(events: Mapping[int, Iterable[Event]]) -> int:
    """Write units of every create, change of data and logout, at the encoded size."""
    return sum(units for user in events.values() for kind, _, units in user if kind in "wx")


def two_item_floor_units(events: Mapping[int, Iterable[Event]], interval_s: float) -> int:
    """The floor of a store whose large sessions are two items (a 1-unit head and the data).

    Such a store pays one unit more for each write of data over one unit (the
    head as well as the data); touches still cost one.
    """
    writes = sum(
        units + (units > 1) for user in events.values() for kind, _, units in user if kind in "wx"
    )
    return writes + touches(events, interval_s, one_unit=True).units


def floor_units(events: Mapping[int, Iterable[Event]], interval_s: float) -> int:
    """The floor's write units for a lifetime bound of ``interval_s`` (0: every request)."""
    return data_writes(events) + touches(events, interval_s, one_unit=True).units


def what_if_intervals(ttl_s: float, divisors: Iterable[int]) -> list[float]:
    """touch_interval values to model: ttl/N for each divisor, plus 0 and never."""
    return sorted({ttl_s / n for n in divisors} | {0.0, math.inf})
