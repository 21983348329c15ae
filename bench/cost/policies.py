"""The session-store policies the cost benchmark replays a trace through.

1. cyclicsess, driven through :class:`cyclicsess.RequestSession`, the
   lifecycle every adapter uses (load if the user has a cookie; regenerate at
   login; save on changed bytes, else a throttled touch; invalidate at
   logout), with its defaults and with the Express store's 30 s touch
   interval, and with large data kept in the head (compression only);
2. ``@cyclic.sh/session-store`` as its code does it (strongly consistent
   GetItem; the express session, cookie and an ``updated`` field included, as
   a map attribute; PutItem on every save; an UpdateItem of ``expires`` and
   ``sess.updated`` when 30 s passed since the last write);
3. write-on-every-request (aiohttp-session / Flask-Session style): GetItem
   and a full PutItem of JSON on every request;
4. touch-on-every-request (connect-dynamodb style): GetItem, PutItem of JSON
   when changed, UpdateItem of ``expires`` on every other request.

Each replaying task keeps its own virtual time in a context variable, so the
bill does not depend on the interleaving of users.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import math
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bench.cost.billing import counting_client, create_table, purpose
from bench.cost.traces import EPOCH0, LOGIN, LOGOUT, READ, Request, Trace, User
from cyclicsess import RequestSession, SessionConfig, SessionStore

CYCLIC_TOUCH_S = 30.0  # @cyclic.sh/session-store's DEFAULT_TOUCH_INTERVAL

#: The virtual time of the request a task is replaying, in epoch seconds.
NOW: contextvars.ContextVar[float] = contextvars.ContextVar("now")

#: What a policy's store writes per user, for the floor and the what-if:
#: ("w", t_ms, floor units) a write of data, ("t", t_ms, head size) an unchanged
#: request (a touch if one is due), ("x", t_ms, floor units) a logout.
Event = tuple[str, int, int]


def vclock() -> float:
    return NOW.get()


def fmt_duration(seconds: float) -> str:
    """``90 s``, ``3 min``, ``1.2 h``, or ``never``."""
    if seconds == math.inf:
        return "never"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.3f}".rstrip("0").rstrip(".") + " s"
    if s < 7200:
        return f"{sign}{s / 60:.3g} min"
    return f"{sign}{s / 3600:.3g} h"


@dataclass
class UserState:
    """A user's browser as one policy sees it: the cookie, and the session's storage key."""

    sid: str | None = None
    key: tuple[str, ...] | None = None
    created: int = 0
    last_ms: int = 0


@dataclass
class Lifetime:
    """Measured (stored expiry) - (request time + ttl), in seconds, and sessions lost."""

    every: list[float] = field(default_factory=lambda: [math.inf, -math.inf])
    final: list[float] = field(default_factory=lambda: [math.inf, -math.inf])
    lost: int = 0  # gone though its user came back within the ttl
    expired: int = 0  # gone after a break longer than the ttl: as it should

    @staticmethod
    def add(bounds: list[float], value: float) -> None:
        bounds[0], bounds[1] = min(bounds[0], value), max(bounds[1], value)


class Policy:
    """One store's way of handling the trace's requests, on its own table."""

    name = ""
    rule = ""
    bound = ""
    interval_s = 0.0  # how long a session may go without a renewal of its expiry
    key_names: tuple[str, ...] = ("id",)

    def __init__(self, url: str, table: str, ttl_s: int) -> None:
        self.client = counting_client(url, self.key_names)
        self.table = table
        self.ttl_s = ttl_s
        self.life = Lifetime()
        self.seconds = 0.0
        self.events: dict[int, list[Event]] = defaultdict(list)

    async def setup(self) -> None:
        await create_table(self.client, self.table, self.key_names)

    async def close(self) -> None:
        await self.client.close()

    async def handle(self, trace: Trace, user: User, state: UserState, request: Request) -> None:
        raise NotImplementedError

    def missing(self, state: UserState, t_ms: int) -> None:
        """The user's cookie found no session: expired after a break, or lost."""
        if t_ms - state.last_ms >= (self.ttl_s - self.interval_s - 1) * 1000:
            self.life.expired += 1
        else:
            self.life.lost += 1

    def measure(self, state: UserState, request: Request, final: bool) -> None:
        if state.key is None:
            return
        item = self.client.items.get(state.key)
        if item is None:
            return
        error = int(item["expires"]["N"]) - (EPOCH0 + request[0] / 1000 + self.ttl_s)
        Lifetime.add(self.life.every, error)
        if final:
            Lifetime.add(self.life.final, error)

    async def replay(self, trace: Trace, concurrency: int) -> None:
        await self.setup()
        queue = iter(trace.users)

        async def worker() -> None:
            for user in queue:
                state = UserState()
                for i, request in enumerate(user.requests):
                    NOW.set(EPOCH0 + request[0] / 1000)
                    await self.handle(trace, user, state, request)
                    self.measure(state, request, i == len(user.requests) - 1)
                    state.last_ms = request[0]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        self.seconds = time.perf_counter() - started


_PURPOSES = {LOGIN: "login", LOGOUT: "logout", READ: "touch"}


class CyclicsessPolicy(Policy):
    """The store behind the lifecycle every cyclicsess adapter runs, one request at a time."""

    def __init__(
        self,
        url: str,
        table: str,
        ttl_s: int,
        *,
        touch_interval_s: float | None = None,
        separate_large_data: bool = True,
    ) -> None:
        super().__init__(url, table, ttl_s)
        options: dict[str, Any] = {"separate_large_data": separate_large_data}
        if touch_interval_s is not None:
            options["touch_interval"] = timedelta(seconds=touch_interval_s)
        self.store = SessionStore(
            table, ttl=timedelta(seconds=ttl_s), clock=vclock, client=self.client, **options
        )
        self.config = SessionConfig.of(self.store)
        self.cookie_name = self.config.cookie.resolve(https=False).name
        self.interval_s = self.store.touch_interval_s
        interval = fmt_duration(self.interval_s)
        defaults = "defaults" if touch_interval_s is None else f"touch_interval {interval}"
        self.name = f"cyclicsess, {defaults}" + (
            "" if separate_large_data else ", large data inline (compression only)"
        )
        self.rule = f"touch when >= {interval} since the last write"
        self.bound = f"-({interval} + 1 s) < e <= 0"

    async def close(self) -> None:
        await self.store.close()

    def _floor_units(self, data: Mapping[str, Any], storage_key: str) -> int:
        """Write units of one item holding ``data`` as the store encodes it (compressed)."""
        size = self.store.layout.item_size(storage_key, self.store._stored_bytes(data))
        return max(1, math.ceil(size / 1024))

    async def handle(self, trace: Trace, user: User, state: UserState, request: Request) -> None:
        t_ms, kind, _ = request
        headers = [f"{self.cookie_name}={state.sid}"] if state.sid else []
        lifecycle = RequestSession(self.config, cookie_headers=headers, https=False)
        session = await lifecycle.load()
        events = self.events[user.uid]
        if state.sid is not None and session.new:
            self.missing(state, t_ms)
        if kind == LOGOUT:
            if not session.new and state.key is not None:
                events.append(("x", t_ms, self._floor_units(dict(session), state.key[0])))
            session.invalidate()
        else:
            if session.new and kind != LOGIN:  # lost or expired: the app makes the user log in
                request = (t_ms, LOGIN, ("again", t_ms))
            if request[1] == LOGIN:
                session = await lifecycle.regenerate(drop=("csrf",))
            trace.apply(user, request, session)
        with purpose(_PURPOSES.get(request[1], "save")):
            commit = await lifecycle.commit(status=200)
        if commit.cookie is not None:
            expired = commit.cookie.max_age == 0
            state.sid = None if expired else commit.cookie.value
            state.key = None if expired else (self.store.storage_key(commit.cookie.value),)
        if commit.outcome in ("created", "saved") and state.key is not None:
            events.append(("w", t_ms, self._floor_units(dict(session), state.key[0])))
        elif commit.outcome in ("touched", "nothing") and state.key is not None:
            events.append(("t", t_ms, self.client.sizes.get(state.key, 0)))


# -- the JavaScript stores, on the raw client ------------------------------------------


def _express_cookie(now_ms: int, ttl_s: int) -> dict[str, Any]:
    expires = dt.datetime.fromtimestamp((now_ms + ttl_s * 1000) / 1000, dt.timezone.utc)
    return {
        "originalMaxAge": ttl_s * 1000,
        "expires": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "secure": False,
        "httpOnly": True,
        "path": "/",
    }


def marshall(value: Any) -> dict[str, Any]:
    """A JS value as @aws-sdk/lib-dynamodb marshalls it (objects become maps)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": format(Decimal(str(value)).normalize(), "f")}  # as DynamoDB stores it
    if isinstance(value, str):
        return {"S": value} if value else {"NULL": True}
    if isinstance(value, dict):
        return {"M": {k: marshall(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [marshall(v) for v in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(type(value).__name__)


def unmarshall(value: Mapping[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "N":
        return float(raw) if "." in raw else int(raw)
    if kind == "M":
        return {k: unmarshall(v) for k, v in raw.items()}
    if kind == "L":
        return [unmarshall(v) for v in raw]
    if kind == "NULL":
        return None
    return raw


_js_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class RawPolicy(Policy):
    """The three JS-style stores: express-session's flow on the raw client."""

    prefix = "sess:"
    read_consistent = True

    def key_for(self, sid: str) -> dict[str, Any]:
        return {name: {"S": self.prefix + sid} for name in self.key_names}

    async def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.client.call(operation, {"TableName": self.table, **payload})

    def decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def new_sid(self) -> str:
        return secrets.token_urlsafe(24)  # uid-safe(24), express-session's default

    async def load(self, state: UserState, now_ms: int) -> dict[str, Any] | None:
        if state.sid is None:
            return None
        answer = await self.call(
            "GetItem", {"Key": self.key_for(state.sid), "ConsistentRead": self.read_consistent}
        )
        item = answer.get("Item")
        if item is not None and int(item["expires"]["N"]) <= now_ms // 1000:
            await self.call("DeleteItem", {"Key": self.key_for(state.sid)})
            item = None
        if item is None:
            self.missing(state, now_ms - EPOCH0 * 1000)
            state.sid = state.key = None
            return None
        return self.decode(item)

    async def save(self, state: UserState, data: dict[str, Any], now_ms: int) -> None:
        raise NotImplementedError

    async def keep(self, state: UserState, sess: dict[str, Any], now_ms: int) -> None:
        """What happens to an unchanged session (touch, or nothing)."""

    async def handle(self, trace: Trace, user: User, state: UserState, request: Request) -> None:
        t_ms, kind, _ = request
        now_ms = EPOCH0 * 1000 + t_ms
        sess = await self.load(state, now_ms)
        if kind == LOGOUT:
            if sess is not None and state.sid is not None:
                with purpose("logout"):
                    await self.call("DeleteItem", {"Key": self.key_for(state.sid)})
            state.sid = state.key = None
            return
        if sess is None and kind != LOGIN:
            request = (t_ms, LOGIN, ("again", t_ms))
        data = {k: v for k, v in (sess or {}).items() if k not in ("cookie", "updated")}
        fresh = sess is None
        if request[1] == LOGIN and sess is not None and state.sid is not None:
            with purpose("login"):  # regenerate: the old item goes, a new id follows
                await self.call("DeleteItem", {"Key": self.key_for(state.sid)})
            fresh = True
        before = _js_json(data)
        trace.apply(user, request, data)
        if fresh:
            state.sid = self.new_sid()
            state.key = self.client.shadow_key(self.key_for(state.sid))
            state.created = now_ms // 1000
            with purpose("login"):
                await self.save(state, data, now_ms)
        elif _js_json(data) != before:
            with purpose("save"):
                await self.save(state, data, now_ms)
        else:
            with purpose("touch"):
                await self.keep(state, sess or {}, now_ms)


class CyclicJsPolicy(RawPolicy):
    name = "@cyclic.sh/session-store (touchInterval 30 s)"
    rule = "touch when >= 30 s since the last write"
    bound = "-(30 s + 1 s) < e <= 0"
    interval_s = CYCLIC_TOUCH_S
    key_names = ("pk", "sk")

    def decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        sess: dict[str, Any] = unmarshall(item["sess"])
        return sess

    def expires(self, now_ms: int) -> dict[str, str]:
        return {"N": str((now_ms + self.ttl_s * 1000) // 1000)}

    async def save(self, state: UserState, data: dict[str, Any], now_ms: int) -> None:
        assert state.sid is not None
        sess = {"cookie": _express_cookie(now_ms, self.ttl_s), **data, "updated": now_ms}
        item = {**self.key_for(state.sid), "expires": self.expires(now_ms), "sess": marshall(sess)}
        await self.call("PutItem", {"Item": item})

    async def keep(self, state: UserState, sess: dict[str, Any], now_ms: int) -> None:
        updated = sess.get("updated")
        if updated and updated + CYCLIC_TOUCH_S * 1000 > now_ms:
            return
        assert state.sid is not None
        await self.call(
            "UpdateItem",
            {
                "Key": self.key_for(state.sid),
                "UpdateExpression": "set expires = :e, sess.#up = :n",
                "ExpressionAttributeNames": {"#up": "updated"},
                "ExpressionAttributeValues": {":e": self.expires(now_ms), ":n": {"N": str(now_ms)}},
                "ReturnValues": "UPDATED_NEW",
            },
        )


class WriteEveryPolicy(RawPolicy):
    name = "write on every request (aiohttp-session style)"
    rule = "PutItem on every request"
    bound = "-1 s < e <= 0"
    prefix = "AIOHTTP_SESSION_"

    def new_sid(self) -> str:
        return uuid.uuid4().hex

    def decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        session: dict[str, Any] = json.loads(item["data"]["S"])["session"]
        return session

    async def save(self, state: UserState, data: dict[str, Any], now_ms: int) -> None:
        assert state.sid is not None
        blob = _js_json({"created": state.created, "session": data})
        expires = {"N": str((now_ms + self.ttl_s * 1000) // 1000)}
        item = {**self.key_for(state.sid), "data": {"S": blob}, "expires": expires}
        await self.call("PutItem", {"Item": item})

    async def keep(self, state: UserState, sess: dict[str, Any], now_ms: int) -> None:
        await self.save(state, sess, now_ms)


class TouchEveryPolicy(RawPolicy):
    name = "touch on every request (connect-dynamodb style)"
    rule = "UpdateItem of expires on every unchanged request"
    bound = "-1 s < e <= 0"

    def decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        sess: dict[str, Any] = json.loads(item["sess"]["S"])
        return sess

    def expires(self, now_ms: int) -> dict[str, str]:
        return {"N": str((now_ms + self.ttl_s * 1000) // 1000)}

    async def save(self, state: UserState, data: dict[str, Any], now_ms: int) -> None:
        assert state.sid is not None
        sess = {"cookie": _express_cookie(now_ms, self.ttl_s), **data}
        item = {
            **self.key_for(state.sid),
            "expires": self.expires(now_ms),
            "type": {"S": "connect-session"},
            "sess": {"S": _js_json(sess)},
        }
        await self.call("PutItem", {"Item": item})

    async def keep(self, state: UserState, sess: dict[str, Any], now_ms: int) -> None:
        assert state.sid is not None
        await self.call(
            "UpdateItem",
            {
                "Key": self.key_for(state.sid),
                "UpdateExpression": "SET #e = :e",
                "ExpressionAttributeNames": {"#e": "expires"},
                "ExpressionAttributeValues": {":e": self.expires(now_ms)},
            },
        )
