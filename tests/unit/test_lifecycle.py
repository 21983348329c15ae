"""The framework-free lifecycle on an in-memory store: every decision, no server, no framework."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from cyclicsess import (
    CookieSettings,
    RequestSession,
    SessionConfig,
    SessionConflict,
    SessionNotFound,
    SessionRecord,
    SessionStore,
    SessionUnavailable,
    StoreUnavailable,
    new_session_id,
)
from cyclicsess.session import merge

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)


class MemoryStore(SessionStore):
    """The store's record API in memory, with the calls counted and failures on demand."""

    def __init__(self) -> None:
        super().__init__("memory")
        self.records: dict[str, SessionRecord] = {}
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.conflicts = 0  # the next saves that meet a newer version (unchanged data)

    def _call_of(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise StoreUnavailable(f"{name} failed", attempts=3)

    def _record(self, sid: str, data: Mapping[str, Any], version: int) -> SessionRecord:
        return SessionRecord(sid, dict(data), version, NOW, NOW, NOW)

    async def get(self, sid: str, *, consistent: bool | None = None) -> SessionRecord | None:
        self._call_of("get")
        return self.records.get(sid)

    async def create_record(self, data: Mapping[str, Any]) -> SessionRecord:
        self._call_of("create")
        record = self._record(new_session_id(), data, 1)
        self.records[record.id] = record
        return record

    async def save_record(self, record: SessionRecord, data: Mapping[str, Any]) -> SessionRecord:
        self._call_of("save")
        current = self.records.get(record.id)
        if current is None:
            raise SessionNotFound("gone")
        if self.conflicts:
            self.conflicts -= 1
            current = self.records[record.id] = self._record(
                record.id, current.data, current.version + 1
            )
        if current.version != record.version:
            raise SessionConflict(
                "newer", expected_version=record.version, current_version=current.version,
                current=current,
            )  # fmt: skip
        saved = self.records[record.id] = self._record(record.id, data, record.version + 1)
        return saved

    async def touch_record(self, record: SessionRecord) -> SessionRecord | None:
        self._call_of("touch")
        return self.records.get(record.id)

    async def regenerate_record(
        self, sid: str, *, data: Mapping[str, Any] | None = None
    ) -> SessionRecord:
        self._call_of("regenerate")
        old = self.records.pop(sid, None)
        if old is None:
            raise SessionNotFound("gone")
        moved = self._record(new_session_id(), old.data if data is None else data, 1)
        self.records[moved.id] = moved
        return moved

    async def destroy(self, sid: str) -> bool:
        self._call_of("destroy")
        return self.records.pop(sid, None) is not None


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def request(store: MemoryStore, sid: str | None = None, **options: Any) -> RequestSession:
    config = SessionConfig.of(store, **options)
    headers = [f"session={sid}"] if sid else []
    return RequestSession(config, cookie_headers=headers, https=False)


def stored(store: MemoryStore, data: dict[str, Any]) -> str:
    record = store._record(new_session_id(), data, 1)
    store.records[record.id] = record
    return record.id


async def test_no_cookie_no_read_and_nothing_to_store_no_write(store: MemoryStore) -> None:
    state = request(store)
    session = await state.load()
    assert session.get("x") is None
    commit = await state.commit(status=200)
    assert (commit.outcome, commit.cookie) == ("nothing", None)
    assert store.calls == []


async def test_new_data_is_created_with_a_cookie(store: MemoryStore) -> None:
    state = request(store)
    (await state.load())["user"] = "ada"
    commit = await state.commit(status=200)
    assert commit.outcome == "created" and commit.cookie is not None
    assert store.records[commit.cookie.value].data == {"user": "ada"}
    assert commit.private


async def test_unchanged_data_is_touched_changed_data_saved(store: MemoryStore) -> None:
    sid = stored(store, {"n": 1})
    state = request(store, sid)
    await state.load()
    assert (await state.commit()).outcome == "touched"
    state = request(store, sid)
    (await state.load())["n"] = 2
    assert (await state.commit()).outcome == "saved"
    assert store.records[sid].data == {"n": 2}


@pytest.mark.parametrize("how", ["clear", "invalidate"])
async def test_an_emptied_session_is_destroyed_and_its_cookie_expired(
    store: MemoryStore, how: str
) -> None:
    sid = stored(store, {"user": "ada"})
    state = request(store, sid)
    session = await state.load()
    getattr(session, how)()
    commit = await state.commit()
    assert commit.outcome == "destroyed"
    assert commit.cookie is not None and commit.cookie.max_age == 0
    assert sid not in store.records


async def test_a_logout_that_fails_expires_the_cookie_and_asks_503_in_every_mode(
    store: MemoryStore,
) -> None:
    for policy in ("fail", "warn"):
        sid = stored(store, {"user": "ada"})
        state = request(store, sid, on_store_error=policy)
        (await state.load()).clear()
        store.failing = {"destroy"}
        commit = await state.commit()
        store.failing = set()
        assert (commit.outcome, commit.status) == ("failed", 503)
        assert commit.cookie is not None and commit.cookie.max_age == 0
        assert sid in store.records


async def test_regenerate_moves_with_the_final_data_in_one_store_call(store: MemoryStore) -> None:
    sid = stored(store, {"cart": ["book"], "csrf": "planted"})
    state = request(store, sid)
    session = await state.regenerate(drop=["csrf"])
    assert session.id is None  # assigned at the commit
    session["user"] = "ada"
    store.calls.clear()
    commit = await state.commit()
    assert store.calls == ["regenerate"]
    assert commit.outcome == "created" and commit.cookie is not None
    assert store.records[commit.cookie.value].data == {"cart": ["book"], "user": "ada"}
    assert sid not in store.records
    assert session.id == commit.cookie.value


@pytest.mark.parametrize("policy", ["fail", "warn"])
async def test_a_failed_regenerate_saves_nothing_under_the_old_id(
    store: MemoryStore, policy: str
) -> None:
    sid = stored(store, {"csrf": "planted"})
    state = request(store, sid, on_store_error=policy)
    session = await state.regenerate()
    session["user"] = "victim"
    store.failing = {"regenerate"}
    commit = await state.commit()
    assert store.records[sid].data == {"csrf": "planted"}  # untouched
    if policy == "fail":
        assert (commit.outcome, commit.status) == ("failed", 503)
        assert commit.cookie is None
    else:
        assert commit.outcome == "created" and commit.cookie is not None
        assert commit.cookie.value != sid
        assert store.records[commit.cookie.value].data == {"csrf": "planted", "user": "victim"}


async def test_a_move_of_a_session_ended_meanwhile_keeps_only_this_requests_changes(
    store: MemoryStore,
) -> None:
    sid = stored(store, {"user": "ada"})
    state = request(store, sid)
    session = await state.regenerate()
    session["sudo"] = True
    del store.records[sid]  # a logout in another tab
    commit = await state.commit()
    assert commit.cookie is not None
    assert store.records[commit.cookie.value].data == {"sudo": True}  # no "user" back


async def test_a_login_onto_a_session_ended_meanwhile_keeps_what_it_assigned(
    store: MemoryStore,
) -> None:
    sid = stored(store, {"user": "ada", "cart": ["book"]})
    state = request(store, sid)
    session = await state.regenerate()
    session["user"] = "ada"  # the login asserts who is logged in, the same as before
    del store.records[sid]  # the old session ended (expired, or a logout in another tab)
    commit = await state.commit()
    assert commit.cookie is not None
    assert store.records[commit.cookie.value].data == {"user": "ada"}  # the cart stays ended


async def test_a_conflict_merges_from_the_version_the_failed_write_met(store: MemoryStore) -> None:
    sid = stored(store, {"a": 1, "b": 1})
    state = request(store, sid)
    (await state.load())["a"] = 2
    store.conflicts = 1
    store.calls.clear()
    commit = await state.commit()
    assert commit.outcome == "saved"
    assert store.calls == ["save", "save"]  # no read: merged from SessionConflict.current


async def test_a_conflict_is_refused_with_409_when_asked(store: MemoryStore) -> None:
    sid = stored(store, {"a": 1})
    state = request(store, sid, on_conflict="refuse")
    (await state.load())["a"] = 2
    store.conflicts = 1
    commit = await state.commit()
    assert (commit.outcome, commit.status) == ("conflict", 409)
    assert store.records[sid].data == {"a": 1}


async def test_merge_rounds_are_bounded(store: MemoryStore) -> None:
    sid = stored(store, {"a": 1})
    state = request(store, sid, merge_attempts=2)
    (await state.load())["a"] = 2
    store.conflicts = 10
    store.calls.clear()
    commit = await state.commit()
    assert commit.status == 409
    assert store.calls == ["save", "save"]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_failed_response_saves_nothing(store: MemoryStore, status: int) -> None:
    state = request(store)
    (await state.load())["charged"] = True
    assert (await state.commit(status=status)).outcome == "nothing"
    assert store.calls == []


async def test_abandon_saves_nothing(store: MemoryStore) -> None:
    state = request(store)
    (await state.load())["charged"] = True
    state.abandon()
    assert (await state.commit()).outcome == "nothing"
    assert store.records == {}


async def test_a_failed_read_is_503_or_a_session_never_saved_over(store: MemoryStore) -> None:
    sid = stored(store, {"n": 1})
    store.failing = {"get"}
    with pytest.raises(SessionUnavailable):
        await request(store, sid).load()
    state = request(store, sid, on_store_error="warn")
    (await state.load())["n"] = 5
    store.failing = set()
    assert (await state.commit()).outcome == "nothing"
    assert store.records[sid].data == {"n": 1}


async def test_two_cookies_of_the_name_are_no_session_and_no_read(store: MemoryStore) -> None:
    sid = stored(store, {"user": "ada"})
    config = SessionConfig.of(store)
    state = RequestSession(
        config, cookie_headers=[f"session={new_session_id()}; session={sid}"], https=False
    )
    assert dict(await state.load()) == {}
    assert store.calls == []


async def test_commit_is_idempotent(store: MemoryStore) -> None:
    state = request(store)
    (await state.load())["x"] = 1
    first = await state.commit()
    assert await state.commit() is first
    assert store.calls == ["create"]


def test_the_cookie_name_is_the_safest_the_request_allows() -> None:
    store = MemoryStore()
    https = RequestSession(SessionConfig.of(store), cookie_headers=[], https=True)
    http = RequestSession(SessionConfig.of(store), cookie_headers=[], https=False)
    assert (https.cookie.name, https.cookie.secure) == ("__Host-session", True)
    assert (http.cookie.name, http.cookie.secure) == ("session", False)
    domain = SessionConfig.of(store, cookie=CookieSettings(domain="example.com"))
    assert RequestSession(domain, cookie_headers=[], https=True).cookie.name == "__Secure-session"


def test_private_responses_vary_on_cookie_and_keep_the_apps_cache_control() -> None:
    from cyclicsess import Commit

    changes = Commit("touched", private=True).headers(vary="Accept-Encoding", cache_control=None)
    assert (changes.vary, changes.cache_control) == ("Accept-Encoding, Cookie", "private")
    changes = Commit("touched", private=True).headers(vary="cookie", cache_control="no-store")
    assert (changes.vary, changes.cache_control) == ("cookie", None)
    nothing = Commit("nothing").headers(vary=None, cache_control=None)
    assert (nothing.set_cookie, nothing.vary, nothing.cache_control) == (None, None, None)


def test_merge_reapplies_only_untouched_keys() -> None:
    base = {"a": 1, "b": 1, "gone": 1}
    theirs = {"a": 1, "b": 5, "gone": 1}
    assert merge(base, {"a": 2, "b": 1, "gone": 1}, theirs) == {"a": 2, "b": 5, "gone": 1}
    assert merge(base, {"a": 1, "b": 1}, theirs) == {"a": 1, "b": 5}  # this one deleted "gone"
    assert merge(base, {"a": 2, "b": 1, "gone": 1}, {**theirs, "a": 3}) is None  # both changed a


def test_the_configuration_is_checked() -> None:
    store = MemoryStore()
    with pytest.raises(TypeError):
        SessionConfig.of("sessions")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="on_store_error"):
        SessionConfig.of(store, on_store_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="merge_attempts"):
        SessionConfig.of(store, merge_attempts=0)
