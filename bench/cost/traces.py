"""The traffic the cost benchmark replays: seeded traces of users' requests, and what each does.

A trace is a list of users, each with requests ``(ms since the day began,
kind, operation)``; its handler applies a request to the session dict the way
the app's code would. Two traces:

- **day**: N users of a shop over one day, Zipf-distributed activity (a few
  heavy users, most with a handful of requests), visits hours apart, small
  sessions (a login's token and claims, a cart that grows), ttl a day;
- **engaged**: users of a tool kept open all day (a dashboard, a SaaS app):
  visits of 20-200 requests at 5-60 s gaps, about 2% of requests changing
  the session, sessions of 1-20 KB (an OAuth token set, workspace state), ttl
  an hour, so every visit after a break starts with a login.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from tests.harness import percentile

DAY_S = 86_400
EPOCH0 = 1_748_822_400  # the simulated day starts 2025-06-02T00:00:00Z

LOGIN, READ, CHANGE, LOGOUT = range(4)
KIND_NAMES = ("login", "read-only", "change", "logout")

Request = tuple[int, int, tuple[Any, ...]]  # (ms since the day began, kind, operation)
Session = MutableMapping[str, Any]


@dataclass
class User:
    uid: int
    roles: list[str]
    requests: list[Request]
    visits: int


@dataclass
class Trace:
    """A named trace: its users, its ttl, and what a request does to a session."""

    name: str
    ttl_s: int
    users: list[User]
    apply: Callable[[User, Request, Session], None]
    shape: str  # one line on how it was drawn

    @property
    def requests(self) -> int:
        return sum(len(user.requests) for user in self.users)


def _token(nonce: int, nbytes: int) -> str:
    return base64.urlsafe_b64encode(random.Random(nonce).randbytes(nbytes)).rstrip(b"=").decode()


def _spread(rng: random.Random, total: int, parts: int) -> list[int]:
    sizes = [1] * parts
    for _ in range(total - parts):
        sizes[rng.randrange(parts)] += 1
    return sizes


# -- the day trace -------------------------------------------------------------------

ZIPF_A, ZIPF_Q, ZIPF_KMAX = 3.0, 2.0, 3000  # requests per user: 1 + Zipf-Mandelbrot
MAX_VISITS = 12
VISIT_GAP_MIN_S = 1_800  # visits start at least 30 min after the previous one ended
CLICK_MEDIAN_S, CLICK_SIGMA = 20.0, 1.1  # gaps inside a visit: log-normal, 1 s .. 15 min
P_RELOGIN = 0.08  # a later visit starts with a login (regenerate)
P_VISIT_LOGOUT = 0.05  # a visit ends with a logout (the next one logs in again)
P_FINAL_LOGOUT = 0.3  # the user's last request is a logout
P_CHANGE = 0.16  # of the other requests, this share changes the session
AUTH_MEDIAN, AUTH_SIGMA, AUTH_MAX = 350, 1.0, 12_000  # cached token/claims, bytes
MAX_DATA = 20_000  # the cart stops growing at about this session size
HOURLY = (  # relative arrival rate per hour of the day
    0.25, 0.15, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.0, 1.0,
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.3, 1.4, 1.3, 0.9, 0.5,
)  # fmt: skip
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam"
)


def _zipf_sampler(rng: random.Random) -> Callable[[], int]:
    ks = range(1, ZIPF_KMAX + 1)
    cum = list(itertools.accumulate((k + ZIPF_Q) ** -ZIPF_A for k in ks))
    return lambda: bisect.bisect_left(cum, rng.random() * cum[-1]) + 1


def _time_of_day(rng: random.Random) -> float:
    hour = rng.choices(range(24), weights=HOURLY)[0]
    return (hour + rng.random()) * 3600


def _day_times(rng: random.Random, n: int) -> list[tuple[float, bool, bool]]:
    """Request times of one user, with (first of visit, last of visit) flags."""
    visits = max(1, min(MAX_VISITS, round(n / rng.uniform(3, 6))))
    starts = sorted(_time_of_day(rng) for _ in range(visits))
    times: list[tuple[float, bool, bool]] = []
    end = -math.inf
    for start, size in zip(starts, _spread(rng, n, visits), strict=True):
        t = max(start, end + VISIT_GAP_MIN_S)
        for j in range(size):
            if j:
                gap = rng.lognormvariate(math.log(CLICK_MEDIAN_S), CLICK_SIGMA)
                t += min(max(gap, 1.0), 900.0)
            times.append((t, j == 0, j == size - 1))
        end = t
    times = [entry for entry in times if entry[0] < DAY_S - 1]
    return times or [(rng.uniform(0, DAY_S - 3600), True, True)]


def day_trace(users: int, seed: int) -> Trace:
    """N shoppers' requests over one day; deterministic for a seed."""
    rng = random.Random(seed)
    zipf = _zipf_sampler(rng)
    trace = []
    for uid in range(users):
        times = _day_times(rng, 1 + zipf())
        roles = ["customer"] + (["beta"] if rng.random() < 0.2 else [])
        requests: list[Request] = []
        alive, cart, data_size = False, 0, 0
        for i, (t, first, last) in enumerate(times):
            t_ms = int(t * 1000)
            final = i == len(times) - 1
            logout_odds = (P_FINAL_LOGOUT if i >= 2 else 0.0) if final else P_VISIT_LOGOUT
            if not alive:
                auth = min(int(rng.lognormvariate(math.log(AUTH_MEDIAN), AUTH_SIGMA)), AUTH_MAX)
                requests.append((t_ms, LOGIN, ("new", rng.getrandbits(64), auth)))
                alive, cart, data_size = True, 0, 250 + auth
            elif first and rng.random() < P_RELOGIN:
                requests.append((t_ms, LOGIN, ("again", rng.getrandbits(64))))
            elif (final or last) and rng.random() < logout_odds:
                requests.append((t_ms, LOGOUT, ()))
                alive = False
            elif rng.random() < P_CHANGE:
                r = rng.random()
                if r < 0.5 and data_size + 130 <= MAX_DATA:
                    name_len = rng.randint(30, 110)
                    op: tuple[Any, ...] = ("add", rng.randint(100_000, 999_999), name_len)
                    cart += 1
                    data_size += 50 + name_len
                elif r < 0.7 and cart:
                    op = ("qty", rng.randrange(cart))
                else:
                    op = ("count",)
                requests.append((t_ms, CHANGE, op))
            else:
                requests.append((t_ms, READ, ()))
        trace.append(User(uid, roles, requests, sum(first for _, first, _ in times)))
    shape = (
        f"1 + Zipf-Mandelbrot(a={ZIPF_A}, q={ZIPF_Q}) requests per user in visits >= 30 min "
        f"apart, log-normal gaps (median {CLICK_MEDIAN_S:g} s) inside a visit, {P_CHANGE:.0%} "
        "of requests change the session"
    )
    return Trace("day", DAY_S, trace, apply_day_request, shape)


def apply_day_request(user: User, request: Request, data: Session) -> None:
    """What the shop's handler does to the session on this request."""
    t_ms, kind, op = request
    if kind == LOGIN:
        if op[0] == "new" or not data:
            nonce = op[1]
            auth = op[2] if op[0] == "new" else AUTH_MEDIAN
            data.clear()
            data.update(
                uid=user.uid,
                user=f"user{user.uid:07d}",
                email=f"user{user.uid:07d}@example.com",
                roles=list(user.roles),
                csrf=_token(nonce, 32),
                login_at=EPOCH0 + t_ms // 1000,
                auth=_token(nonce + 1, auth * 3 // 4),
                views=0,
                cart=[],
            )
        else:  # signed in again: the session carries over, with a new token
            data["login_at"] = EPOCH0 + t_ms // 1000
            data["csrf"] = _token(op[1], 32)
    elif kind == CHANGE:
        if op[0] == "add":
            sku, name_len = op[1], op[2]
            data["cart"].append(
                {"sku": f"SKU-{sku}", "qty": 1, "price": sku % 9_000 + 99, "name": LOREM[:name_len]}
            )
        elif op[0] == "qty":
            data["cart"][op[1]]["qty"] += 1
        else:
            data["views"] += 1


# -- the engaged trace ---------------------------------------------------------------

ENGAGED_TTL_S = 3_600
VISIT_REQUESTS = (20, 200)  # requests per visit, uniform
ENGAGED_GAP_S = (5.0, 60.0)  # seconds between requests inside a visit, uniform
VISITS_PER_USER = (1, 2, 3)
VISIT_WEIGHTS = (0.45, 0.4, 0.15)
BREAK_S = (3_900, 14_400)  # between visits: longer than the ttl, so each visit logs in
P_ENGAGED_CHANGE = 0.02
P_ENGAGED_LOGOUT = 0.3  # a visit ends with a logout
SESSION_BYTES = (1_000, 20_000)  # log-uniform target size of a session's data
WIDGETS = ("chart", "table", "map", "counter", "feed", "gauge", "heatmap", "list")


def engaged_trace(users: int, seed: int) -> Trace:
    """N users of a tool kept open all day; deterministic for a seed."""
    rng = random.Random(seed)
    trace = []
    for uid in range(users):
        visits = rng.choices(VISITS_PER_USER, weights=VISIT_WEIGHTS)[0]
        t = rng.uniform(6 * 3600, 11 * 3600)
        requests: list[Request] = []
        size = int(math.exp(rng.uniform(*map(math.log, SESSION_BYTES))))
        for visit in range(visits):
            if visit:
                t += rng.uniform(*BREAK_S)
            count = rng.randint(*VISIT_REQUESTS)
            requests.append((int(t * 1000), LOGIN, ("new", rng.getrandbits(64), size)))
            for j in range(1, count):
                t += rng.uniform(*ENGAGED_GAP_S)
                last = j == count - 1
                if last and rng.random() < P_ENGAGED_LOGOUT:
                    requests.append((int(t * 1000), LOGOUT, ()))
                elif rng.random() < P_ENGAGED_CHANGE:
                    requests.append((int(t * 1000), CHANGE, (rng.getrandbits(32),)))
                else:
                    requests.append((int(t * 1000), READ, ()))
        requests = [request for request in requests if request[0] < DAY_S * 1000]
        trace.append(User(uid, ["member"], requests, visits))
    shape = (
        f"visits of {VISIT_REQUESTS[0]}-{VISIT_REQUESTS[1]} requests at "
        f"{ENGAGED_GAP_S[0]:g}-{ENGAGED_GAP_S[1]:g} s gaps, {len(VISITS_PER_USER)} visits at "
        f"most, breaks longer than the ttl, {P_ENGAGED_CHANGE:.0%} of requests change the "
        f"session, sessions of {SESSION_BYTES[0] // 1000}-{SESSION_BYTES[1] // 1000} KB "
        "(log-uniform)"
    )
    return Trace("engaged", ENGAGED_TTL_S, trace, apply_engaged_request, shape)


def _jwt(rng: random.Random, claims: dict[str, Any]) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT","kid":"k1"}').decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
    return f"{header}.{body}.{_token(rng.getrandbits(64), 256)}".replace("=", "")


def _workspace(rng: random.Random, budget: int) -> list[dict[str, Any]]:
    """Dashboard widgets (repetitive structure, varied values) of about ``budget`` bytes."""
    widgets: list[dict[str, Any]] = []
    used = 0
    while used < budget:
        widget = {
            "id": f"w-{rng.getrandbits(40):010x}",
            "kind": rng.choice(WIDGETS),
            "title": " ".join(rng.choice(LOREM.split()) for _ in range(rng.randint(2, 6))),
            "position": [rng.randrange(12), rng.randrange(40), rng.randint(1, 6)],
            "filters": {"range": rng.choice(["1h", "24h", "7d", "30d"]), "team": rng.randrange(50)},
            "series": [round(rng.uniform(0, 1000), 2) for _ in range(rng.randint(4, 24))],
        }
        widgets.append(widget)
        used += len(json.dumps(widget))
    return widgets


def apply_engaged_request(user: User, request: Request, data: Session) -> None:
    """What the dashboard's handler does to the session on this request."""
    t_ms, kind, op = request
    if kind == LOGIN:
        rng = random.Random(op[1])
        size = op[2] if op[0] == "new" else SESSION_BYTES[0]
        claims = {"sub": f"user-{user.uid}", "iat": EPOCH0 + t_ms // 1000, "scope": "read write"}
        tokens = {
            "access_token": _jwt(rng, claims),
            "refresh_token": _token(rng.getrandbits(64), 48),
            "id_token": _jwt(rng, {**claims, "email": f"user{user.uid}@example.com"}),
            "expires_at": EPOCH0 + t_ms // 1000 + 3600,
        }
        data.clear()
        data.update(
            user=f"user-{user.uid}",
            csrf=_token(op[1] + 1, 32),
            tokens=tokens,
            workspace=_workspace(rng, max(0, size - 1_100)),
        )
    elif kind == CHANGE:
        rng = random.Random(op[0])
        workspace = data.get("workspace") or []
        if workspace:
            widget = workspace[rng.randrange(len(workspace))]
            widget["filters"] = {
                "range": rng.choice(["1h", "24h", "7d"]),
                "team": rng.randrange(50),
            }
        data["workspace"] = workspace
        data["seen_at"] = EPOCH0 + t_ms // 1000


# -- summaries -------------------------------------------------------------------------


def summary(trace: Trace) -> str:
    """A few lines on what the trace holds."""
    kinds: Counter[int] = Counter()
    gaps: list[float] = []
    per_user = [len(user.requests) for user in trace.users]
    for user in trace.users:
        previous = None
        for t_ms, kind, _ in user.requests:
            kinds[kind] += 1
            if previous is not None:
                gaps.append((t_ms - previous) / 1000)
            previous = t_ms
    total = max(1, sum(per_user))
    mix = ", ".join(f"{KIND_NAMES[k]} {kinds[k] / total:.1%}" for k in range(4))
    inside = [gap for gap in gaps if gap < VISIT_GAP_MIN_S] or [0.0]
    return (
        f"- **{trace.name}**: {len(trace.users):,} users, {total:,} requests in one simulated "
        f"day, ttl {trace.ttl_s // 60:,} min; {mix}. {trace.shape}.\n"
        f"  Requests per user: median {statistics.median(per_user):g}, p90 "
        f"{percentile(per_user, 0.9):g}, max {max(per_user)}; "
        f"{sum(user.visits for user in trace.users):,} visits; gaps inside a visit: "
        f"median {statistics.median(inside):.0f} s."
    )
