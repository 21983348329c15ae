"""Model-based test: random operation sequences on a real store, checked against a model.

A hypothesis state machine creates, reads, saves (without a version, with the
current one, a stale one, or one from an earlier read), touches (by id and by
an earlier record), destroys and regenerates sessions while a fake clock moves
by small and large steps (around ``touch_interval``, ``ttl``, the absolute
lifetime, and exactly onto a session's boundaries). Every answer of the real
store, on a real server, must match :class:`tests.model.StoreModel`, and so
must the raw items in the table (no resurrection, expired items deleted on
read unless kept, touches never change data or version).

The budget is small so ``make test`` stays fast; a soak:
``CYCLICSESS_MODEL_EXAMPLES=500 make integration``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)

from cyclicsess import (
    RetryPolicy,
    SessionConflict,
    SessionNotFound,
    SessionRecord,
    SessionStore,
    new_session_id,
)
from tests.helpers import FakeClock
from tests.integration.conftest import Server
from tests.integration.test_store import stored_blob
from tests.model import SetConflict, SetNotFound, SetOk, SetOutcome, StoreModel

T = TypeVar("T")

SETTINGS = settings(
    max_examples=int(os.environ.get("CYCLICSESS_MODEL_EXAMPLES", "25")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: The clock starts here plus a drawn number of milliseconds (2027-01-15).
START = 1_800_000_000

# A slow machine must not turn a slow answer into a retry: that is not what is tested here.
PATIENT = RetryPolicy(budget=dt.timedelta(seconds=60), attempt_timeout=dt.timedelta(seconds=20))


@dataclass(frozen=True)
class Config:
    name: str
    ttl: dt.timedelta
    touch_interval: dt.timedelta
    absolute_lifetime: dt.timedelta | None
    keep_expired: bool

    def options(self) -> dict[str, Any]:
        return {
            "ttl": self.ttl,
            "touch_interval": self.touch_interval,
            "absolute_lifetime": self.absolute_lifetime,
            "keep_expired": self.keep_expired,
        }


CONFIGS = [
    Config("touch-always", dt.timedelta(minutes=10), dt.timedelta(0), None, False),
    Config(
        "throttled-abs1h-kept",
        dt.timedelta(minutes=10),
        dt.timedelta(seconds=30),
        dt.timedelta(hours=1),
        True,
    ),
    # an absolute lifetime just above ttl: any renewal after 2 minutes makes it the limit
    Config(
        "throttled-abs12m",
        dt.timedelta(minutes=10),
        dt.timedelta(seconds=30),
        dt.timedelta(minutes=12),
        False,
    ),
]


#: Clock moves: steps (mostly ones that keep sessions alive) and boundaries of a session.
STEPS = ["small", "small", "throttle", "half_ttl", "ttl", "long"]
STEPS += ["to_expiry", "to_throttle", "to_absolute"]


@dataclass(frozen=True)
class Read:
    """A record returned by ``get``, kept to touch or save with later."""

    record: SessionRecord
    touched_ms: int  # the model's ``touched`` when it was read


LARGE = st.sampled_from([1_500, 6_000])
session_data = st.dictionaries(
    st.sampled_from(["user", "n", "cart"]),
    st.one_of(
        st.integers(-(2**31), 2**31),
        st.text(max_size=5),
        st.lists(st.integers(0, 9), max_size=3),
        # large and incompressible: kept in a data item apart from the head
        st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0), LARGE),
    ),
    max_size=3,
)


class StoreMachine(RuleBasedStateMachine):
    sids = Bundle("sids")  # issued ids (live or expired)
    gone = Bundle("gone")  # destroyed or never issued ids
    reads = Bundle("reads")

    def __init__(self, url: str, table: str, config: Config) -> None:
        super().__init__()
        self.config = config
        self.clock = FakeClock(START)
        self.loop = asyncio.new_event_loop()
        self.store = SessionStore(
            table, endpoint_url=url, clock=self.clock, retry=PATIENT, **config.options()
        )
        self.run(self.store.open())
        self.model = StoreModel(
            ttl_s=self.store.ttl_s,
            touch_interval_s=self.store.touch_interval_s,
            absolute_lifetime_s=self.store.absolute_lifetime_s,
            keep_expired=config.keep_expired,
        )

    def run(self, call: Awaitable[T]) -> T:
        return self.loop.run_until_complete(call)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    # -- checks ----------------------------------------------------------------

    def check_stored(self, sid: str) -> None:
        """The raw item in the table is what the model says (or absent)."""
        answer = self.run(
            self.store.client.call(
                "GetItem",
                {
                    "TableName": self.store.layout.table,
                    "Key": self.store.layout.key(self.store.storage_key(sid)),
                    "ConsistentRead": True,
                },
            )
        )
        expected = self.model.stored(sid)
        raw = answer.get("Item")
        if expected is None:
            assert not raw, f"an item exists that should not: {raw}"
            return
        assert raw, "the item is missing"
        item = self.store.layout.parse(raw)
        blob: bytes | None = item.blob
        if item.data_ref is not None and self.model.live(sid, self.clock.now) is None:
            blob = None  # an ended head's data item may be gone (the session moved, then ended)
        else:
            blob = self.run(stored_blob(self.store.client, self.store, item))
            assert blob is not None, "a live session's data item is gone"
            assert item.data_expires is None or item.data_expires >= item.expires
        assert (item.expires, item.touched_ms, item.created, item.version) == (
            expected.expires,
            expected.touched_ms,
            expected.created,
            expected.version,
        )
        if blob is not None:
            assert self.store._decode(blob) == expected.data

    # -- the clock -------------------------------------------------------------

    @initialize(target=sids, start_ms=st.integers(0, 999), data=session_data)
    def start(self, start_ms: int, data: dict[str, Any]) -> str:
        """Set the clock and create a first session."""
        self.clock.now = START + start_ms / 1000
        return self.create(data)

    @rule(
        sid=sids,
        step=st.sampled_from(STEPS),
        jitter_ms=st.integers(-2000, 2000),
        nudge_ms=st.sampled_from([0, -1, 1]),
    )
    def advance(self, sid: str, step: str, jitter_ms: int, nudge_ms: int) -> None:
        """Move the clock by a step, or onto a boundary of ``sid``.

        A step is around 1 s, ``touch_interval``, ``ttl``/2, ``ttl`` or the absolute
        lifetime (``jitter_ms`` around it); a boundary (``to_*``, ``nudge_ms`` around it)
        is when ``sid`` expires, when a touch writes again, or when its absolute lifetime
        ends. A boundary without the limit or already passed means no move.
        """
        model = self.model
        if not step.startswith("to_"):
            lifetime = model.absolute_lifetime_s
            base = {
                "small": 1.0,
                "throttle": model.touch_interval_s,
                "half_ttl": model.ttl_s / 2,
                "ttl": model.ttl_s,
                "long": lifetime if lifetime is not None else 3 * model.ttl_s,
            }[step]
            self.clock.advance(max(0, round(base * 1000) + jitter_ms) / 1000)
            return
        item = model.stored(sid)
        if item is None:
            return
        if step == "to_expiry":
            target = model.expiry(item)
        elif step == "to_throttle" and model.touch_interval_s > 0:
            target = item.touched_ms / 1000 + model.touch_interval_s
        elif step == "to_absolute" and model.absolute_lifetime_s is not None:
            target = item.created + model.absolute_lifetime_s
        else:
            return
        target += nudge_ms / 1000
        if target > self.clock.now:
            self.clock.now = target

    # -- the store's API -------------------------------------------------------

    @rule(target=sids, data=session_data)
    def create(self, data: dict[str, Any]) -> str:
        sid = self.run(self.store.create(data))
        self.model.create(sid, data, self.clock.now)
        self.check_stored(sid)
        return sid

    def _get(self, sid: str) -> Read | None:
        expected = self.model.get(sid, self.clock.now)
        got = self.run(self.store.get(sid))
        self.check_stored(sid)  # an expired item was deleted, unless kept
        if expected is None:
            assert got is None, f"got {got} for a session that is not live"
            return None
        assert got is not None, f"no session; the model has {expected}"
        assert got.id == sid
        assert got.data == expected.data
        assert got.version == expected.version
        assert got.expires_at.timestamp() == self.model.expiry(expected)
        assert round(got.touched_at.timestamp() * 1000) == expected.touched_ms
        assert got.created_at.timestamp() == expected.created
        return Read(got, expected.touched_ms)

    @rule(target=reads, sid=sids)
    def get(self, sid: str) -> Any:
        read = self._get(sid)
        return multiple() if read is None else read

    def _set(self, sid: str, data: dict[str, Any], version: int | None) -> None:
        expected = self.model.set(sid, data, version, self.clock.now)
        outcome: SetOutcome
        try:
            outcome = SetOk(self.run(self.store.set(sid, data, version=version)))
        except SessionNotFound:
            outcome = SetNotFound()
        except SessionConflict as exc:
            outcome = SetConflict(exc.expected_version, exc.current_version)
        assert outcome == expected
        self.check_stored(sid)  # on failure: nothing written, nothing recreated

    @rule(
        sid=sids,
        data=session_data,
        which=st.sampled_from(["none", "current", "stale", "ahead"]),
    )
    def set(self, sid: str, data: dict[str, Any], which: str) -> None:
        current = self.model.items[sid].version
        version = {"none": None, "current": current, "stale": current - 1, "ahead": current + 1}
        self._set(sid, data, version[which])

    @rule(read=reads, data=session_data)
    def set_read_version(self, read: Read, data: dict[str, Any]) -> None:
        """Save with the version of an earlier read (the current one or a stale one)."""
        self._set(read.record.id, data, read.record.version)

    def _touch(self, session: str | SessionRecord, read_touched_ms: int | None) -> None:
        sid = session.id if isinstance(session, SessionRecord) else session
        expected = self.model.touch(sid, self.clock.now, read_touched_ms=read_touched_ms)
        assert self.run(self.store.touch(session)) is expected
        self.check_stored(sid)  # data and version unchanged; nothing recreated

    def _wait_until_due(self, touched_ms: int, nudge_ms: int) -> None:
        """Move the clock to when a touch writes again (a millisecond around it)."""
        if self.model.touch_interval_s > 0:
            due = touched_ms / 1000 + self.model.touch_interval_s + nudge_ms / 1000
            self.clock.now = max(self.clock.now, due)

    @rule(sid=sids, wait=st.booleans(), nudge_ms=st.sampled_from([0, -1, 1]))
    def touch_id(self, sid: str, wait: bool, nudge_ms: int) -> None:
        """Touch by id, now or when a touch is due again (after the stored touch)."""
        item = self.model.stored(sid)
        if wait and item is not None:
            self._wait_until_due(item.touched_ms, nudge_ms)
        self._touch(sid, None)

    @rule(read=reads, wait=st.booleans(), nudge_ms=st.sampled_from([0, -1, 1]))
    def touch_record(self, read: Read, wait: bool, nudge_ms: int) -> None:
        """Touch with a record, now or when a touch is due after the record's touch."""
        if wait:
            self._wait_until_due(read.touched_ms, nudge_ms)
        self._touch(read.record, read.touched_ms)

    @rule(target=gone, sid=consumes(sids))
    def destroy(self, sid: str) -> str:
        self.run(self.store.destroy(sid))
        self.model.destroy(sid)
        self.check_stored(sid)
        return sid

    def _regenerate(self, sid: str) -> str | None:
        if self.model.live(sid, self.clock.now) is None:
            with pytest.raises(SessionNotFound):
                self.run(self.store.regenerate(sid))
            self.check_stored(sid)
            return None
        new_sid = self.run(self.store.regenerate(sid))
        assert new_sid != sid
        self.model.regenerate(sid, new_sid, self.clock.now)
        self.check_stored(sid)  # the old item has ended
        self.check_stored(new_sid)  # same data, version 1, created carried over
        return new_sid

    @rule(target=sids, sid=consumes(sids))
    def regenerate(self, sid: str) -> str:
        """The new id replaces the old one in ``sids``; the old one is checked dead here."""
        new_sid = self._regenerate(sid)
        if new_sid is None:
            return sid
        assert self._get(sid) is None
        self._touch(sid, None)
        self._set(sid, {"after": "regenerate"}, None)
        return new_sid

    @rule(target=gone)
    def unknown(self) -> str:
        """A well-formed id that was never issued."""
        sid = new_session_id()
        self.model.forget(sid)
        return sid

    @rule(
        sid=gone,
        op=st.sampled_from(["get", "set", "set_version", "touch", "regenerate", "destroy"]),
        data=session_data,
    )
    def poke_gone(self, sid: str, op: str, data: dict[str, Any]) -> None:
        """Any operation on a destroyed or never issued id: nothing comes back."""
        if op == "get":
            assert self._get(sid) is None
        elif op == "set":
            self._set(sid, data, None)
        elif op == "set_version":
            self._set(sid, data, self.model.items[sid].version)
        elif op == "touch":
            self._touch(sid, None)
        elif op == "regenerate":
            assert self._regenerate(sid) is None
        else:
            self.run(self.store.destroy(sid))  # idempotent
            self.check_stored(sid)


async def create_table(url: str, table: str) -> None:
    async with SessionStore(table, endpoint_url=url, retry=PATIENT) as store:
        await store.ensure_table()


@pytest.mark.parametrize("config", CONFIGS, ids=[config.name for config in CONFIGS])
def test_store_matches_model(server: Server, config: Config) -> None:
    table = f"model-{uuid.uuid4().hex[:12]}"
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(create_table(server.url, table))
    finally:
        loop.close()
    run_state_machine_as_test(lambda: StoreMachine(server.url, table, config), settings=SETTINGS)
