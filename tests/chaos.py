"""Chaos under load: random faults, outages and clock jumps under many simulated users.

The pieces :mod:`tests.integration.test_chaos` puts together:

- :class:`ChaosProxy`: a :class:`~tests.faultproxy.FaultProxy` that also injects
  faults at random, each kind at its own rate, and can drop the server for a
  while (every request reset). It overrides only the proxy's rule look-up:
  planned rules (``fail_next``) still come first.
- :class:`WarpClock`: real time plus an offset that jumps past the ttl, so the
  sessions of a store on it expire at known moments.
- :func:`make_shop`: a purpose-built aiohttp app on the session middleware
  (login, add to cart, view, logout) that answers with what it saved, and
  reports how many store calls each request made.
- :class:`SimUser`: one simulated visitor with its own HTTP client, checking
  every answer against what it knows (:class:`Ledger` keeps the findings).
- ``/proc`` probes for sockets, file descriptors and memory.

What counts as a wrong answer (each one is a :attr:`Ledger.violations` entry):

- a status other than 200, 401 (not logged in), 409 or 503, or no answer;
- a request slower than ``calls x (budget + CALL_SLACK_S) + REQUEST_SLACK_S``,
  ``calls`` being the store calls the app made for it;
- data of another user (a user name or cart item that is not the visitor's);
- a session that should be live shown as absent (its acknowledged items are
  then counted as lost), or a live session's cart missing an acknowledged or
  already seen item, holding an item never sent to it, or holding one twice;
- a destroyed session (200 logout; the old id of a 200 login; one seen absent
  once) or an expired one (the clock jumped past the ttl since its last
  request) served again;
- a 200 add-to-cart whose save was dropped (the cookie deleted) while the
  session had no reason to end; a dropped save that deletes nothing shows up
  at the next request as a lost session.

A session may end without anything being wrong after a failed logout, a
clock jump during one of its requests, or a login that failed while moving it
(:data:`MOVE_FAILED`: the store's documented trade-off; its acknowledged items
are counted in :attr:`Ledger.lost_after_failed_login`, not as lost).

An add-to-cart is *acknowledged* when it answered 200 with the item in the
cart and did not delete the cookie. A 503 or 409 leaves the item *maybe*
saved: it may show up later, or never; once a consistent read showed it, it
must stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import random
import re
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from cyclicsess import SessionStore
from cyclicsess.aiohttp import CookieSettings, get_session, new_session, setup
from tests.faultproxy import FAULT_KINDS, FaultProxy

#: Fault kinds injected at random and their default rates (per proxied request).
DEFAULT_RATES: dict[str, float] = {
    "throttle": 0.02,
    "throttling": 0.02,
    "500": 0.02,
    "503": 0.01,
    "reset": 0.02,
    "stall": 0.01,
    "drop_answer": 0.03,
    "badcrc": 0.01,
}
#: How much longer than its budget one store call may take (scheduling noise).
CALL_SLACK_S = 0.35
#: Random bytes that make a session too large for its head (see cyclicsess._data_items).
LARGE_PAD_BYTES = 3_000
#: How much a whole request may take beyond its store calls (app, client, event loop).
REQUEST_SLACK_S = 1.0


def parse_rates(spec: str | None) -> dict[str, float]:
    """Rates from ``kind=rate,...`` (e.g. ``CYCLICSESS_CHAOS_RATES``), over the defaults."""
    rates = dict(DEFAULT_RATES)
    for entry in (spec or "").split(","):
        if not entry.strip():
            continue
        kind, _, rate = entry.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} in rates {spec!r}")
        rates[kind] = float(rate)
    if sum(rates.values()) >= 1:
        raise ValueError(f"fault rates must add up to less than 1: {rates}")
    return rates


# -- the proxy ------------------------------------------------------------------------


class ChaosProxy(FaultProxy):
    """A fault proxy that also fails requests at random and can drop the server.

    Args:
        upstream_url: the real server.
        rates: probability of each fault kind per request (planned rules first).
        seed: for the random draws.
        stall: how long a ``stall`` holds a request (longer than the attempt timeout).

    Attributes:
        chaos: whether random faults and outages apply (off while tables are made
            and checked).
        outage: while True, every request is reset (the server is "dropped").
        outage_faults: how many requests an outage reset.
        outages: how many outages there were.
    """

    def __init__(
        self, upstream_url: str, *, rates: Mapping[str, float], seed: int, stall: float
    ) -> None:
        super().__init__(upstream_url, stall=stall)
        self.rates = dict(rates)
        self.chaos = False
        self.outage = False
        self.outage_faults = 0
        self.outages = 0
        self._rng = random.Random(seed)

    def _take(self, operation: str) -> str | None:
        planned = super()._take(operation)
        if planned is not None or not self.chaos:
            return planned
        if self.outage:
            self.outage_faults += 1
            return "reset"
        draw = self._rng.random()
        for kind, rate in self.rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return None

    def random_faults(self) -> Counter[str]:
        """Faults injected by kind, the outages' resets not included."""
        counts = Counter(fault.kind for fault in self.faults_injected)
        counts["reset"] -= self.outage_faults
        return +counts

    async def drop_for(self, seconds: float) -> None:
        """Reset every request for ``seconds``: the server is gone meanwhile."""
        self.outages += 1
        self.outage = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self.outage = False


class WarpClock:
    """Real time plus an offset; :meth:`jump` moves it forward and counts epochs."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.epoch = 0

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds
        self.epoch += 1


# -- the app --------------------------------------------------------------------------


@dataclass
class _Cost:
    calls: int = 0
    trace: list[str] = field(default_factory=list)  # each call's operation and outcome


_COST: ContextVar[_Cost | None] = ContextVar("chaos_cost", default=None)


@dataclass
class StoreCalls:
    """Every store call the apps made: how many, and the slowest."""

    count: int = 0
    failed: int = 0
    worst_s: float = 0.0
    worst_operation: str = ""


def instrument(store: SessionStore, calls: StoreCalls) -> None:
    """Count and time the store's DynamoDB calls, per request and in all."""
    client = store.client
    original = client.call
    loop = asyncio.get_running_loop()

    async def call(operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        cost = _COST.get()
        if cost is not None:
            cost.calls += 1
        start = loop.time()
        try:
            answer = await original(operation, payload)
        except Exception as exc:
            calls.failed += 1
            if cost is not None:
                cost.trace.append(f"{operation}:{type(exc).__name__}")
            raise
        finally:
            took = loop.time() - start
            calls.count += 1
            if took > calls.worst_s:
                calls.worst_s, calls.worst_operation = took, operation
        if cost is not None:
            cost.trace.append(f"{operation}{'+item' if answer.get('Item') else ''}")
        return answer

    client.call = call  # type: ignore[method-assign]


async def _login(request: web.Request) -> web.Response:
    session = await new_session(request)
    moved = not session.new  # a live session is moved to a new id, data and all
    session["user"] = request.query["user"]
    session["logins"] = session.get("logins", 0) + 1  # every login writes
    if session["logins"] % 2:  # and every other one makes a large session (a data item)
        session["pad"] = os.urandom(LARGE_PAD_BYTES)
    else:
        session.pop("pad", None)
    return web.json_response(
        {"user": session["user"], "cart": session.get("cart", []), "moved": moved}
    )


async def _add(request: web.Request) -> web.Response:
    session = await get_session(request)
    if "user" not in session:
        return web.json_response({"user": None, "cart": []}, status=401)
    session["cart"] = [*session.get("cart", []), request.query["item"]]
    return web.json_response({"user": session["user"], "cart": session["cart"]})


async def _view(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"user": session.get("user"), "cart": session.get("cart", [])})


async def _logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    user = session.get("user")
    session.invalidate()
    return web.json_response({"user": user, "cart": []})


def make_shop(
    store: SessionStore,
    *,
    cookie_name: str,
    signing_secret: str | None,
    errors: list[str],
) -> web.Application:
    """The shop on ``store``; every answer says how many store calls it made.

    An exception other than an HTTP answer (a failure the middleware let
    through) is kept in ``errors`` and answered as a 500 naming it.
    """

    @web.middleware
    async def measure(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        cost = _Cost()
        token = _COST.set(cost)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            exc.headers["x-store-calls"] = str(cost.calls)
            exc.headers["x-store-trace"] = " ".join(cost.trace)
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)
            frames = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in where]
            errors.append(
                f"{request.method} {request.path}: {exc!r} at {' <- '.join(frames[::-1][:6])}"
            )
            response = web.json_response({"error": repr(exc)[:300]}, status=500)
        finally:
            _COST.reset(token)
        response.headers["x-store-calls"] = str(cost.calls)
        response.headers["x-store-trace"] = " ".join(cost.trace)
        return response

    app = web.Application(middlewares=[measure])  # outside the session middleware
    setup(
        app,
        store,
        cookie=CookieSettings(name=cookie_name, secure=False),
        signing_secret=signing_secret,
        on_store_error="fail",
    )
    app.router.add_post("/login", _login)
    app.router.add_post("/cart", _add)
    app.router.add_get("/view", _view)
    app.router.add_post("/logout", _logout)
    return app


# -- the users ------------------------------------------------------------------------


@dataclass
class Target:
    """One shop as the users see it."""

    group: str
    url: str
    cookie_name: str
    sid_of: Callable[[str], str]  # cookie value -> session id
    clock: WarpClock | None  # None: real time, no jumps


@dataclass
class Tracked:
    """One session as its user knows it."""

    target: Target
    user: str
    cookie: str
    acked: set[str] = field(default_factory=set)  # acknowledged adds
    seen: set[str] = field(default_factory=set)  # maybe-items a consistent read showed
    maybe: set[str] = field(default_factory=set)  # adds of unknown outcome
    may_end: str | None = None  # why it may be gone without anything being wrong
    last_epoch: int = 0  # the clock epoch when its last request ended
    doomed: bool = False  # the clock jumped past the ttl between two of its requests

    def starting(self, epoch: int) -> None:
        """A request is sent at ``epoch``: a jump since the last one ended expired it."""
        if epoch > self.last_epoch:
            self.doomed = True

    def must_hold(self) -> set[str]:
        return self.acked | self.seen


@dataclass
class Ledger:
    """What the users did and found."""

    budget_s: float
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acked: int = 0
    lost: int = 0  # acknowledged items of a session that vanished or lost them
    lost_after_failed_login: int = 0
    dropped_200: int = 0  # a 200 add whose save was dropped (session ended meanwhile)
    worst_s: float = 0.0
    worst_excess_s: float = -1e9  # the largest (time - bound) seen
    sessions: int = 0  # sessions the users got a cookie for
    violations: list[str] = field(default_factory=list)
    dead: list[tuple[Target, str, str]] = field(default_factory=list)  # (target, cookie, why)
    finals: list[Tracked] = field(default_factory=list)  # sessions live when abandoned
    replays: int = 0

    def violation(self, user: str, text: str) -> None:
        self.violations.append(f"{user}: {text}")


@dataclass
class Answer:
    status: int
    data: dict[str, Any] | None
    cookie: str | None  # a new cookie value set by the answer
    deleted: bool  # the answer deleted the cookie
    start_epoch: int
    end_epoch: int
    trace: list[str]  # the store calls the app made, with their outcomes


#: Why a session may be gone: a login failed while moving it (a documented trade-off:
#: the old id is ended first, so a failed write of the new one ends the session).
MOVE_FAILED = "a login failed"
#: How many of a user's last requests a violation's report shows.
HISTORY = 4


def _short(cookie: str | None) -> str:
    return cookie[:6] if cookie else "-"


class SimUser:
    """A visitor: visits of 15-30 requests (log in, add, view, log out, ...) until the deadline."""

    def __init__(
        self, name: str, target: Target, ledger: Ledger, rng: random.Random, *, think_s: float
    ) -> None:
        self.name = name
        self.target = target
        self.ledger = ledger
        self.rng = rng
        self.think_s = think_s
        self.current: Tracked | None = None
        self.items = 0
        self.dead: list[str] = []  # this user's cookies that must never be served again
        self.history: deque[str] = deque(maxlen=HISTORY)  # the last requests, for reports

    def _violation(self, text: str) -> None:
        self.ledger.violation(
            self.name, f"{text}\n    after: " + "\n           ".join(self.history)
        )

    def _epoch(self) -> int:
        return self.target.clock.epoch if self.target.clock else 0

    async def run(self, deadline: float, max_requests: int) -> None:
        loop = asyncio.get_running_loop()
        hard_cap = 8 * (self.ledger.budget_s + CALL_SLACK_S) + 4 * REQUEST_SLACK_S
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies are handled by hand, exactly
            timeout=aiohttp.ClientTimeout(total=hard_cap),
        ) as http:
            sent = 0
            while loop.time() < deadline and sent < max_requests:
                self.current = None  # a new visit: no cookie
                for _ in range(self.rng.randint(15, 30)):
                    if loop.time() >= deadline or sent >= max_requests:
                        break
                    await self._step(http)
                    sent += 1
                    await asyncio.sleep(self.rng.uniform(0, 2 * self.think_s))
                if self.current is not None:
                    self.ledger.finals.append(self.current)
            self.current = None

    async def _step(self, http: aiohttp.ClientSession) -> None:
        if self.current is None:
            await self._login(http)
            return
        draw = self.rng.random()
        if draw < 0.50:
            await self._add(http, self.current)
        elif draw < 0.70:
            await self._view(http, self.current)
        elif draw < 0.80:
            await self._logout(http, self.current)
        elif draw < 0.90:
            await self._login(http)
        elif self.dead:
            await self._replay(http, self.rng.choice(self.dead))
        else:
            await self._view(http, self.current)

    # -- one request ----------------------------------------------------------------

    async def _send(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        tracked: Tracked | None,
        *,
        cookie: str | None = None,
    ) -> Answer:
        """One request with ``tracked``'s cookie (or ``cookie``), timed and checked."""
        target, ledger = self.target, self.ledger
        loop = asyncio.get_running_loop()
        if tracked is not None:
            cookie = tracked.cookie
            tracked.starting(self._epoch())
        headers = {"Cookie": f"{target.cookie_name}={cookie}"} if cookie else {}
        start_epoch, start = self._epoch(), loop.time()
        status, data, new_cookie, deleted, calls, trace = 0, None, None, False, -1, ""
        try:
            async with http.request(method, target.url + path, headers=headers) as response:
                body = await response.read()
                status = response.status
                calls = int(response.headers.get("x-store-calls", "-1"))
                trace = response.headers.get("x-store-trace", "")
                morsel = response.cookies.get(target.cookie_name)
                if morsel is not None:
                    if morsel.value == "" or morsel.get("max-age") == "0":
                        deleted = True
                    else:
                        new_cookie = morsel.value
                if status in (200, 401):
                    data = json.loads(body)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            self._violation(f"{method} {path}: no answer: {exc!r}")
        took = loop.time() - start
        self.history.append(
            f"{method} {path} [{_short(cookie)}] -> {status} {data} set [{_short(new_cookie)}]"
            f"{' deleted' if deleted else ''} in {took:.2f}s, calls: {trace or '-'}"
            f"{f', epoch {start_epoch}-{self._epoch()}' if self.target.clock else ''}"
        )
        ledger.requests += 1
        ledger.statuses[status] += 1
        ledger.worst_s = max(ledger.worst_s, took)
        bound = max(calls, 1) * (ledger.budget_s + CALL_SLACK_S) + REQUEST_SLACK_S
        ledger.worst_excess_s = max(ledger.worst_excess_s, took - bound)
        if took > bound:
            self._violation(f"{method} {path} took {took:.2f}s for {calls} store calls")
        if status not in (0, 200, 401, 409, 503):
            self._violation(f"{method} {path}: unclear error {status} {data or ''}")
        if data is not None:
            self._check_owner(data, f"{method} {path}")
        return Answer(status, data, new_cookie, deleted, start_epoch, self._epoch(), trace.split())

    def _check_owner(self, data: dict[str, Any], what: str) -> None:
        user, cart = data.get("user"), data.get("cart", [])
        if user not in (None, self.name) or any(
            not str(item).startswith(self.name + "-") for item in cart
        ):
            self._violation(f"{what}: another user's data: {data}")

    # -- what an answer says about the session ---------------------------------------

    def _after(self, tracked: Tracked, answer: Answer) -> None:
        if answer.end_epoch > answer.start_epoch:
            tracked.may_end = tracked.may_end or "the clock jumped during a request"
        tracked.last_epoch = answer.end_epoch

    def _check_cart(self, tracked: Tracked, cart: list[str], what: str, extra: str = "") -> None:
        ledger = self.ledger
        if len(set(cart)) != len(cart):
            self._violation(f"{what}: an item stored twice: {cart}")
        missing = tracked.must_hold() - set(cart)
        if missing:
            self._violation(f"{what}: acknowledged items missing: {sorted(missing)}")
            ledger.lost += len(missing & tracked.acked)
            tracked.acked -= missing
            tracked.seen -= missing
        phantom = set(cart) - tracked.must_hold() - tracked.maybe - {extra}
        if phantom:
            self._violation(f"{what}: items never sent to this session: {sorted(phantom)}")
        tracked.seen |= set(cart) & tracked.maybe
        tracked.maybe -= tracked.seen

    def _gone(self, tracked: Tracked, answer: Answer, what: str) -> None:
        """The session was not served: fine if it had a reason to end, else it was lost."""
        ledger = self.ledger
        if tracked.doomed:
            why = "expired (clock jump)"
        elif answer.end_epoch > answer.start_epoch:
            why = "the clock jumped during a request"
        elif tracked.may_end is not None:
            why = tracked.may_end
            if why == MOVE_FAILED:
                ledger.lost_after_failed_login += len(tracked.acked)
        else:
            why = "lost"
            self._violation(
                f"{what}: a live session was not served ({len(tracked.acked)} acknowledged items)"
            )
            ledger.lost += len(tracked.acked)
        self._bury(tracked.cookie, why)
        if self.current is tracked:
            self.current = None

    def _bury(self, cookie: str, why: str) -> None:
        """A cookie whose session must never be served again."""
        if cookie not in self.dead:
            self.dead.append(cookie)
            self.ledger.dead.append((self.target, cookie, why))

    def _served(self, tracked: Tracked, answer: Answer, what: str) -> bool:
        """Check an answer that shows a session; False if it showed none."""
        assert answer.data is not None
        if answer.data.get("user") is None:
            self._gone(tracked, answer, what)
            return False
        if tracked.doomed:
            self._violation(f"{what}: an expired session was served")
        tracked.may_end = None
        return True

    # -- the actions -------------------------------------------------------------------

    async def _login(self, http: aiohttp.ClientSession) -> None:
        old = self.current
        path = f"/login?user={self.name}"
        answer = await self._send(http, "POST", path, old)
        if answer.status == 200:
            assert answer.data is not None
            if answer.cookie is None or (old is not None and answer.cookie == old.cookie):
                if answer.end_epoch > answer.start_epoch and old is not None:
                    # moved, then expired by the jump before its save: nothing to hand over
                    self._gone(old, answer, "login")
                    return
                self._violation("a 200 login set no new cookie")
                return
            fresh = Tracked(self.target, self.name, answer.cookie, last_epoch=answer.end_epoch)
            self.ledger.sessions += 1
            if old is not None:
                if answer.data.get("moved"):
                    if old.doomed:
                        self._violation("login moved an expired session")
                    fresh.acked, fresh.seen, fresh.maybe = old.acked, old.seen, old.maybe
                    self._check_cart(fresh, answer.data.get("cart", []), "login")
                    if answer.end_epoch > answer.start_epoch:
                        # the old session may have expired before the move: a new
                        # session then holds the login alone, not the old cart
                        fresh.maybe = old.acked | old.seen | old.maybe
                        fresh.acked, fresh.seen = set(), set()
                    self._bury(old.cookie, "replaced at login")
                else:
                    self._gone(old, answer, "login")
            elif answer.data.get("cart"):
                self._violation(f"a new session came with a cart: {answer.data}")
            if answer.end_epoch > answer.start_epoch:
                fresh.may_end = "the clock jumped during a request"
            self.current = fresh
            return
        if old is None:
            return
        if answer.cookie is not None and answer.cookie != old.cookie:
            # a failed login that still hands over the new id the session was moved
            # to: the session is there if the move's last write applied, else gone
            fresh = Tracked(self.target, self.name, answer.cookie, last_epoch=answer.end_epoch)
            fresh.acked, fresh.seen, fresh.maybe = old.acked, old.seen, old.maybe
            fresh.may_end = MOVE_FAILED
            self._bury(old.cookie, "replaced at a failed login")
            self.current = fresh
            return
        if answer.status == 401 or answer.deleted:
            self._violation(f"login answered {answer.status} deleting the cookie")
        # A 503 (or 409) login that handed over no new id: the move never ended the
        # old session, or ended it and failed (the documented trade-off)
        old.may_end = old.may_end or MOVE_FAILED
        self._after(old, answer)

    async def _add(self, http: aiohttp.ClientSession, tracked: Tracked) -> None:
        self.items += 1
        item = f"{self.name}-{self.items}"
        answer = await self._send(http, "POST", f"/cart?item={item}", tracked)
        if answer.status in (200, 401):
            assert answer.data is not None
            if not self._served(tracked, answer, "add"):
                return
            cart = answer.data.get("cart", [])
            self._check_cart(tracked, cart, "add", extra=item)
            if item not in cart:
                self._violation(f"add {item} answered 200 without it: {cart}")
            elif answer.deleted:
                # the handler's 200 stands, but the session ended before its save
                self.ledger.dropped_200 += 1
                if tracked.may_end is None and answer.end_epoch == answer.start_epoch:
                    self._violation(f"add {item}: 200 but the save was dropped")
                self._gone(tracked, answer, "add (save dropped)")
                return
            else:
                tracked.acked.add(item)
                self.ledger.acked += 1
        else:
            tracked.maybe.add(item)
        self._after(tracked, answer)

    async def _view(self, http: aiohttp.ClientSession, tracked: Tracked) -> None:
        answer = await self._send(http, "GET", "/view", tracked)
        if answer.status == 200:
            assert answer.data is not None
            if not self._served(tracked, answer, "view"):
                return
            self._check_cart(tracked, answer.data.get("cart", []), "view")
            if answer.deleted:
                self._violation("a view of a live session deleted its cookie")
        self._after(tracked, answer)

    async def _logout(self, http: aiohttp.ClientSession, tracked: Tracked) -> None:
        answer = await self._send(http, "POST", "/logout", tracked)
        if answer.status == 200:
            assert answer.data is not None
            if answer.data.get("user") is None:
                self._gone(tracked, answer, "logout")
            else:
                if tracked.doomed:
                    self._violation("logout found an expired session")
                self._bury(tracked.cookie, "logged out")
            if not answer.deleted:
                self._violation("a 200 logout did not delete the cookie")
            self.current = None
            return
        tracked.may_end = "a logout failed"
        self._after(tracked, answer)

    async def _replay(self, http: aiohttp.ClientSession, cookie: str) -> None:
        self.ledger.replays += 1
        answer = await self._send(http, "GET", "/view", None, cookie=cookie)
        if answer.data is not None and (answer.data.get("user") or answer.data.get("cart")):
            self._violation(f"a destroyed or expired session was served: {answer.data}")


# -- resources ----------------------------------------------------------------------------


def _socket_inodes() -> dict[str, int]:
    inodes: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes[target[8:-1]] = int(fd)
    return inodes


def tcp_connections(ports: Iterable[int]) -> dict[int, int]:
    """This process's TCP connections (not listeners) from or to each port."""
    wanted = set(ports)
    counts = dict.fromkeys(wanted, 0)
    inodes = _socket_inodes()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] not in inodes or fields[3] == "0A":  # 0A: LISTEN
                    continue
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                for port in {local, remote} & wanted:
                    counts[port] += 1
    return counts


def open_fds(excluding_port: int) -> int:
    """Open file descriptors, less the TCP connections to ``excluding_port``."""
    fds = len(os.listdir("/proc/self/fd"))
    return fds - tcp_connections([excluding_port])[excluding_port]


def rss_bytes() -> int:
    """Resident memory, after handing freed heap memory back to the system (glibc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: Object types that must not pile up: one per connection, request, session or call.
CENSUS_TYPES = frozenset(
    {
        "ClientSession",
        "ClientResponse",
        "ClientRequest",
        "TCPConnector",
        "Connection",
        "ResponseHandler",
        "RequestHandler",
        "Request",
        "BaseRequest",
        "Task",
        "Future",
        "TimerHandle",
        "_SelectorSocketTransport",
        "Session",
        "_RequestSession",
        "SessionRecord",
        "StoredItem",
        "StoreUnavailable",
        "DynamoDBError",
    }
)


def census() -> Counter[str]:
    """Live objects of :data:`CENSUS_TYPES` (a cancelled timer waiting to be dropped is not)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in CENSUS_TYPES and not (isinstance(obj, asyncio.TimerHandle) and obj.cancelled()):
            counts[name] += 1
    return counts


def allocated_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


# A token shaped like a session id (43 URL-safe characters, standing alone).
_ID_LIKE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


class CountingHandler(logging.Handler):
    """Counts log records by logger and level, keeps the errors and any id-like token."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.id_like: list[str] = []  # log lines that could carry a session id

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}:{record.levelname}"] += 1
        message = record.getMessage()
        if record.levelno >= logging.ERROR and len(self.errors) < 20:
            self.errors.append(f"{record.name}: {message[:300]}")
        if _ID_LIKE.search(message) and len(self.id_like) < 20:
            self.id_like.append(f"{record.name}: {message[:300]}")


@contextlib.contextmanager
def counting_logs(names: Iterable[str]) -> Any:
    """Route these loggers to one counting handler (not to pytest's capture) meanwhile."""
    handler = CountingHandler()
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)  # every level: no line may carry an id
    try:
        yield handler
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)


async def loop_lag(samples: list[float], every_s: float = 0.05) -> None:
    """Record how late the event loop wakes up (until cancelled)."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(every_s)
        samples.append(loop.time() - start - every_s)
