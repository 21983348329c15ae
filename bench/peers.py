"""The session store's DynamoDB calls as cyclicsess and its peers make them, for the benchmarks.

Every client here is an async context manager factory taking the endpoint URL
and yielding a :class:`Peer`: ``create()`` writes a new session item (a
conditional PutItem) and returns its :class:`Handle`; ``get``, ``set`` and
``touch`` make the store's requests for a handle, with the store's semantics:

- ``get``: a strongly consistent GetItem; None unless the item exists and has
  not expired; otherwise the msgpack data, decoded;
- ``set``: UpdateItem of data, expiry, touch time and version + 1, on condition
  that the item exists and has not expired; returns the new version;
- ``touch``: UpdateItem of expiry and touch time on the same condition.

Clients: ``cyclicsess`` (``SessionStore`` with ``touch_interval`` 0, so a
touch is one UpdateItem), ``aiobotocore`` (a default client), ``aioboto3``
(the ``Table`` resource, as most tutorials use it) and ``aiodynamo`` (its
high-level client on aiohttp). The peers run with their defaults, as their
documentation shows them (so aiobotocore and aioboto3 pool 10 connections).
aioboto3 and aiodynamo are optional: aioboto3 pins an older aiobotocore than
cyclicsess's own venv has, so both live in ``.venv-bench`` only (see
:data:`MISSING` and bench/requirements.txt). All credentials are fake.

Also here: finding the local dynalite and its pid, and reading a process's CPU
time from ``/proc``, for the end-to-end benchmarks.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiobotocore.session import get_session
from yarl import URL

from bench.stub_server import SESSION, TABLE
from cyclicsess import MsgpackCodec, SessionStore, new_session_id
from cyclicsess.ids import KeyHasher
from tests.harness import server_url

REGION = "us-east-1"
TTL_S = 86400
ALIVE = "attribute_exists(#k) AND #e > :now"
SET_EXPRESSION = "SET #d = :d, #e = :e, #t = :t, #v = #v + :one"
TOUCH_EXPRESSION = "SET #e = :e, #t = :t"
SET_NAMES = {"#k": "id", "#e": "expires", "#d": "data", "#t": "touched", "#v": "ver"}
TOUCH_NAMES = {"#k": "id", "#e": "expires", "#t": "touched"}
HASHER = KeyHasher(None, "sess:")  # the store's default key hashing (no secret)
CODEC = MsgpackCodec()


class Handle(NamedTuple):
    """One stored session: its id (what the cookie holds) and its storage key."""

    sid: str
    key: str

    @classmethod
    def new(cls) -> Handle:
        sid = new_session_id()
        return cls(sid, HASHER.storage_key(sid))


@dataclass(frozen=True)
class Peer:
    """One client's implementation of the store's operations."""

    create: Callable[[], Awaitable[Handle]]
    get: Callable[[Handle], Awaitable[dict[str, Any] | None]]
    set: Callable[[Handle], Awaitable[int]]
    touch: Callable[[Handle], Awaitable[bool]]

    def op(self, name: str) -> Callable[[Handle], Awaitable[Any]]:
        return {"get": self.get, "set": self.set, "touch": self.touch}[name]


Factory = Callable[[str], AbstractAsyncContextManager[Peer]]


def use_fake_credentials() -> None:
    """Point botocore and aiodynamo at fake static credentials, whatever the environment."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # fake: for local servers only
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )


def fresh_item(now: float) -> dict[str, Any]:
    """A new session's attributes (the key aside), as plain Python values."""
    return {
        "data": CODEC.encode(SESSION),
        "expires": int(now) + TTL_S,
        "touched": int(now * 1000),
        "created": int(now),
        "ver": 1,
    }


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    """Plain values as DynamoDB JSON (bytes as base64 is the client's job in botocore)."""
    return {
        name: {"B": value} if isinstance(value, bytes) else {"N": str(value)}
        for name, value in item.items()
    }


# -- cyclicsess -------------------------------------------------------------------


@asynccontextmanager
async def cyclicsess_client(url: str) -> AsyncIterator[Peer]:
    store = SessionStore(
        TABLE, endpoint_url=url, region=REGION, touch_interval=timedelta(0), ttl=timedelta(days=1)
    )
    async with store:

        async def create() -> Handle:
            sid = await store.create(SESSION)
            return Handle(sid, store.storage_key(sid))

        async def get(handle: Handle) -> dict[str, Any] | None:
            record = await store.get(handle.sid)
            return None if record is None else record.data

        yield Peer(
            create=create,
            get=get,
            set=lambda handle: store.set(handle.sid, SESSION),
            touch=lambda handle: store.touch(handle.sid),
        )


# -- aiobotocore, default client ------------------------------------------------------


@asynccontextmanager
async def aiobotocore_client(url: str) -> AsyncIterator[Peer]:
    async with get_session().create_client(
        "dynamodb", endpoint_url=url, region_name=REGION
    ) as client:

        async def create() -> Handle:
            handle = Handle.new()
            item = {"id": {"S": handle.key}, **_wire(fresh_item(time.time()))}
            await client.put_item(
                TableName=TABLE,
                Item=item,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "id"},
            )
            return handle

        async def get(handle: Handle) -> dict[str, Any] | None:
            answer = await client.get_item(
                TableName=TABLE, Key={"id": {"S": handle.key}}, ConsistentRead=True
            )
            item = answer.get("Item")
            if not item or int(item["expires"]["N"]) <= time.time():
                return None
            return CODEC.decode(item["data"]["B"])

        async def set_(handle: Handle) -> int:
            now = time.time()
            answer = await client.update_item(
                TableName=TABLE,
                Key={"id": {"S": handle.key}},
                UpdateExpression=SET_EXPRESSION,
                ConditionExpression=ALIVE,
                ExpressionAttributeNames=SET_NAMES,
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":d": {"B": CODEC.encode(SESSION)},
                    ":e": {"N": str(int(now) + TTL_S)},
                    ":t": {"N": str(int(now * 1000))},
                    ":one": {"N": "1"},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return int(answer["Attributes"]["ver"]["N"])

        async def touch(handle: Handle) -> bool:
            now = time.time()
            try:
                await client.update_item(
                    TableName=TABLE,
                    Key={"id": {"S": handle.key}},
                    UpdateExpression=TOUCH_EXPRESSION,
                    ConditionExpression=ALIVE,
                    ExpressionAttributeNames=TOUCH_NAMES,
                    ExpressionAttributeValues={
                        ":now": {"N": str(int(now))},
                        ":e": {"N": str(int(now) + TTL_S)},
                        ":t": {"N": str(int(now * 1000))},
                    },
                )
            except client.exceptions.ConditionalCheckFailedException:
                return False
            return True

        yield Peer(create=create, get=get, set=set_, touch=touch)


# -- aioboto3, Table resource -------------------------------------------------------------


@asynccontextmanager
async def aioboto3_client(url: str) -> AsyncIterator[Peer]:
    import aioboto3

    session = aioboto3.Session(region_name=REGION)
    async with session.resource("dynamodb", endpoint_url=url) as dynamodb:
        table = await dynamodb.Table(TABLE)

        async def create() -> Handle:
            handle = Handle.new()
            await table.put_item(
                Item={"id": handle.key, **fresh_item(time.time())},
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "id"},
            )
            return handle

        async def get(handle: Handle) -> dict[str, Any] | None:
            answer = await table.get_item(Key={"id": handle.key}, ConsistentRead=True)
            item = answer.get("Item")
            if not item or item["expires"] <= time.time():
                return None
            return CODEC.decode(item["data"].value)

        async def set_(handle: Handle) -> int:
            now = time.time()
            answer = await table.update_item(
                Key={"id": handle.key},
                UpdateExpression=SET_EXPRESSION,
                ConditionExpression=ALIVE,
                ExpressionAttributeNames=SET_NAMES,
                ExpressionAttributeValues={
                    ":now": int(now),
                    ":d": CODEC.encode(SESSION),
                    ":e": int(now) + TTL_S,
                    ":t": int(now * 1000),
                    ":one": 1,
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return int(answer["Attributes"]["ver"])

        async def touch(handle: Handle) -> bool:
            now = time.time()
            try:
                await table.update_item(
                    Key={"id": handle.key},
                    UpdateExpression=TOUCH_EXPRESSION,
                    ConditionExpression=ALIVE,
                    ExpressionAttributeNames=TOUCH_NAMES,
                    ExpressionAttributeValues={
                        ":now": int(now),
                        ":e": int(now) + TTL_S,
                        ":t": int(now * 1000),
                    },
                )
            except table.meta.client.exceptions.ConditionalCheckFailedException:
                return False
            return True

        yield Peer(create=create, get=get, set=set_, touch=touch)


# -- aiodynamo, high-level client on aiohttp -----------------------------------------------------


@asynccontextmanager
async def aiodynamo_client(url: str) -> AsyncIterator[Peer]:
    from aiodynamo.client import Client
    from aiodynamo.credentials import Key, StaticCredentials
    from aiodynamo.errors import ConditionalCheckFailed, ItemNotFound
    from aiodynamo.expressions import F
    from aiodynamo.http.aiohttp import AIOHTTP
    from aiodynamo.models import ReturnValues

    credentials = StaticCredentials(
        Key(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    )
    async with aiohttp.ClientSession() as http:
        client = Client(AIOHTTP(http), credentials, REGION, endpoint=URL(url))
        table = client.table(TABLE)

        def alive(now: float) -> Any:
            return F("id").exists() & F("expires").gt(int(now))

        async def create() -> Handle:
            handle = Handle.new()
            await table.put_item(
                {"id": handle.key, **fresh_item(time.time())}, condition=F("id").does_not_exist()
            )
            return handle

        async def get(handle: Handle) -> dict[str, Any] | None:
            try:
                item = await table.get_item({"id": handle.key}, consistent_read=True)
            except ItemNotFound:
                return None
            if item["expires"] <= time.time():
                return None
            return CODEC.decode(item["data"])

        async def set_(handle: Handle) -> int:
            now = time.time()
            update = (
                F("data").set(CODEC.encode(SESSION))
                & F("expires").set(int(now) + TTL_S)
                & F("touched").set(int(now * 1000))
                & F("ver").change(1)
            )
            answer = await table.update_item(
                {"id": handle.key},
                update,
                condition=alive(now),
                return_values=ReturnValues.updated_new,
            )
            assert answer is not None
            return int(answer["ver"])

        async def touch(handle: Handle) -> bool:
            now = time.time()
            update = F("expires").set(int(now) + TTL_S) & F("touched").set(int(now * 1000))
            try:
                await table.update_item({"id": handle.key}, update, condition=alive(now))
            except ConditionalCheckFailed:
                return False
            return True

        yield Peer(create=create, get=get, set=set_, touch=touch)


# -- which clients can run here -------------------------------------------------------------


def _missing(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return module
    return None


#: Every client, by row name, in table order.
ALL: dict[str, Factory] = {
    "cyclicsess": cyclicsess_client,
    "aiobotocore": aiobotocore_client,
    "aioboto3": aioboto3_client,
    "aiodynamo": aiodynamo_client,
}

#: Clients that cannot run in this environment, with the module they lack.
MISSING: dict[str, str] = {
    name: module
    for name, module in (("aioboto3", _missing("aioboto3")), ("aiodynamo", _missing("aiodynamo")))
    if module is not None
}

#: The clients that can run here.
AVAILABLE: dict[str, Factory] = {name: f for name, f in ALL.items() if name not in MISSING}


DISTRIBUTIONS = ("cyclicsess", "aiobotocore", "botocore", "aioboto3", "aiodynamo", "aiohttp")


def versions(distributions: tuple[str, ...] = DISTRIBUTIONS) -> str:
    """One line naming the versions of the libraries measured, and Python's."""
    parts = [f"Python {sys.version.split()[0]}"]
    for dist in distributions:
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return "Versions: " + ", ".join(parts) + "."


def load_average() -> str:
    """The machine's 1-minute load average over its cores, for the report."""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def machine_note(before: str) -> str:
    """A line saying how busy the machine was, ``before`` being :func:`load_average` then."""
    return (
        f"Load average at start: {before}; at end: {load_average()} (other processes "
        "compete for the cores: trust ratios within a run more than absolute numbers)."
    )


def missing_note() -> str:
    if not MISSING:
        return ""
    return (
        f"Not measured (not installed here): {', '.join(sorted(MISSING))}; run in .venv-bench "
        "(see bench/requirements.txt)."
    )


# -- the local servers the end-to-end benchmarks run against ---------------------------------

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def dynalite_url() -> str:
    """dynalite's URL from ``CYCLICSESS_TEST_SERVERS`` (set by ``tests/servers.py run``)."""
    return server_url("dynalite", "PYTHON -m bench.SCRIPT")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def _owns_socket(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(fd.path) in wanted:
                    return True
    return False


def listening_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:``port``.

    Tries the pid file ``tests/servers.py`` left in ``$CYCLICSESS_RUN_DIR`` (or
    ``.run/``), checked against the socket's owner; else scans ``/proc``.
    """
    inodes = _listening_inodes(port)
    if not inodes:
        raise RuntimeError(f"nothing listens on port {port}")
    run_dir = Path(os.environ.get("CYCLICSESS_RUN_DIR", ROOT / ".run"))
    with contextlib.suppress(OSError, ValueError):
        pid = int((run_dir / f"dynalite-{port}.pid").read_text())
        if _owns_socket(pid, inodes):
            return pid
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _owns_socket(int(entry.name), inodes):
            return int(entry.name)
    raise RuntimeError(f"no process of ours owns the socket on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15
