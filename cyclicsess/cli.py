"""The command line: python -m cyclicsess COMMAND TABLE ... (--help for each command).

Every command takes the store's options (endpoint, region, profile, key
schema, key prefix, ``--user-key``) and ``--secret-env NAME`` to read the
server secret from an environment variable (never from the command line).
Errors are one line on stderr and exit code 1. Session ids may begin with
``-``: the commands take them as written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TextIO

from ._bulk import pages
from ._capacity import item_size
from ._item import StoredItem
from .errors import ConfigurationError, CyclicSessError, DecodeError, DynamoDBError
from .ids import is_well_formed
from .infra import cloudformation, iam_policy, terraform
from .store import SessionStore

__all__ = ["duration", "main"]

#: On-demand storage price of the standard table class, us-east-1, $ per GB-month
#: (https://aws.amazon.com/dynamodb/pricing/on-demand/); DynamoDB bills each item
#: with 100 bytes of overhead.
STORAGE_PRICE_PER_GB_MONTH = 0.25
ITEM_OVERHEAD_BYTES = 100
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """A duration such as ``90``, ``30s``, ``5m``, ``2h`` or ``1d`` (seconds without a unit)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 5m, 2h or 1d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


class Progress:
    """A one-line count on stderr while a scan runs, only when stderr is a terminal."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.shown = self.stream.isatty()
        self.what = what
        self.count = 0

    def step(self, n: int = 1) -> None:
        self.count += n
        if self.shown and self.count % 100 == 0:
            self.stream.write(f"\r{self.what}: {self.count:,}")
            self.stream.flush()

    def done(self) -> None:
        if self.shown:
            self.stream.write(f"\r{self.what}: {self.count:,}\n")
            self.stream.flush()


# -- the parser ------------------------------------------------------------------------------


def _store_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("the store")
    group.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8000 (default: botocore's)")
    group.add_argument("--region", help="default: AWS_REGION, AWS_DEFAULT_REGION, the profile")
    group.add_argument("--profile", help="an AWS config profile")
    group.add_argument("--hash-key", default="id", help="the table's partition key (id)")
    group.add_argument("--range-key", help="the sort key of a single-table design")
    group.add_argument("--key-prefix", default="sess:", help="the storage keys' prefix (sess:)")
    group.add_argument("--user-key", help="sessions are indexed by data[USER_KEY]")
    group.add_argument(
        "--secret-env",
        metavar="NAME",
        help="read the server secret from this environment variable (as the app has it)",
    )


COMMANDS: dict[str, str] = {
    "ensure-table": "create the table if missing, wait for ACTIVE, enable TTL (and the user index)",
    "stats": "count items, live and expired sessions, sizes, TTL status and storage cost",
    "inspect": "show one session's record: version, created, touched, expires (and data)",
    "revoke": "end one session",
    "revoke-user": "end every session of a user (but one)",
    "purge-expired": "delete every session that ended more than --grace ago",
    "iam-policy": "print the least-privilege IAM policy for the table",
    "template": "print the table's definition for CloudFormation or Terraform",
}


def parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    top = argparse.ArgumentParser(prog="python -m cyclicsess", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("table", metavar="TABLE")
        if name in ("inspect", "revoke"):
            command.add_argument("session_id", metavar="SESSION_ID")
        if name == "inspect":
            command.add_argument("--data", action="store_true", help="show the data too")
        if name == "revoke-user":
            command.add_argument("user", metavar="USER", help="the value of data[USER_KEY]")
            command.add_argument("--keep", metavar="SESSION_ID", help="leave this session alone")
        if name == "stats":
            command.add_argument("--json", action="store_true", help="JSON for scripts")
        if name == "purge-expired":
            command.add_argument(
                "--grace",
                type=duration,
                default=timedelta(minutes=5),
                help="delete only sessions that ended at least this long ago by this "
                "host's clock (default 5m): how far the clocks of this host and of the "
                "web servers may disagree",
            )
        if name == "iam-policy":
            command.add_argument("--account-id", default="*", help="the AWS account (*)")
            command.add_argument(
                "--sessions-only",
                action="store_true",
                help="only what a web app needs, not the table's set-up and maintenance",
            )
        if name == "template":
            command.add_argument("--format", required=True, choices=["cloudformation", "terraform"])
        _store_options(command)
    return top


def _as_written(argv: Sequence[str]) -> list[str]:
    """Session ids that begin with ``-`` (one in 64), read as values, not as options."""
    kept: list[str] = []
    moved: list[str] = []
    for token in argv:
        if token.startswith("-") and is_well_formed(token):
            if kept and kept[-1] == "--keep":
                kept[-1] = f"--keep={token}"
            else:
                moved.append(token)
            continue
        kept.append(token)
    return kept + (["--", *moved] if moved else [])


# -- the commands ----------------------------------------------------------------------------


def _store(args: argparse.Namespace) -> SessionStore:
    secret = None
    if args.secret_env:
        secret = os.environ.get(args.secret_env)
        if not secret:
            raise ConfigurationError(f"the environment variable {args.secret_env} is not set")
    return SessionStore(
        args.table,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        hash_key=args.hash_key,
        range_key=args.range_key,
        key_prefix=args.key_prefix,
        user_key=args.user_key,
        secret=secret,
    )


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).isoformat(timespec="seconds")


def _percentiles(sizes: list[int]) -> dict[str, int]:
    if not sizes:
        return {}
    ordered = sorted(sizes)

    def at(fraction: float) -> int:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


async def _stats(store: SessionStore, args: argparse.Namespace) -> str:
    client = store.client
    scan = {"TableName": store.layout.table, "ConsistentRead": True}
    progress = Progress("items scanned")
    now = store._clock()
    items = live = other = 0
    heads: dict[str, tuple[int, str | None]] = {}  # key -> (size, its data item's key)
    data_sizes: dict[str, int] = {}
    stored_bytes = 0
    async for item in pages(client, "Scan", scan):
        progress.step()
        items += 1
        size = item_size(item)
        stored_bytes += size + ITEM_OVERHEAD_BYTES
        key = str(item.get(store.layout.hash_key, {}).get("S", ""))
        kind, parsed = _kind(store, key, item)
        if kind == "data":
            data_sizes[key] = size
        elif parsed is None:
            other += 1
        else:
            heads[key] = (size, parsed.data_ref)
            live += parsed.expiry(store.absolute_lifetime_s) > now
    progress.done()
    sizes = [size + data_sizes.get(ref or "", 0) for size, ref in heads.values()]
    sessions = len(heads)
    stats: dict[str, Any] = {
        "table": store.layout.table,
        "items": items,
        "sessions": sessions,
        "live": live,
        "expired": sessions - live,
        "data_items": len(data_sizes),
        "other_items": other,
        "session_size_bytes": _percentiles(sizes),
        "ttl": await _ttl_status(store),
        "stored_bytes": stored_bytes,
        "storage_dollars_per_month": stored_bytes / 1024**3 * STORAGE_PRICE_PER_GB_MONTH,
    }
    if args.json:
        return json.dumps(stats, indent=2)
    size_text = ", ".join(f"{k} {v:,} B" for k, v in stats["session_size_bytes"].items()) or "-"
    return "\n".join(
        [
            f"table {stats['table']}: {items:,} items, {sessions:,} sessions "
            f"({live:,} live, {sessions - live:,} expired), {len(data_sizes):,} data items "
            f"of large sessions, {other:,} other items",
            f"session sizes (with their data items): {size_text}",
            f"TTL: {stats['ttl']}",
            f"stored: {stored_bytes:,} bytes, about ${stats['storage_dollars_per_month']:.6f} a "
            f"month at ${STORAGE_PRICE_PER_GB_MONTH}/GB-month (standard table class, us-east-1)",
        ]
    )


def _kind(store: SessionStore, key: str, item: dict[str, Any]) -> tuple[str, StoredItem | None]:
    """What a scanned item is: a session's head (parsed), a data item, or another item."""
    if not key.startswith(store.key_prefix):
        return "other", None
    try:
        return "head", store.layout.parse(item)
    except DecodeError:
        pass
    if store.layout.is_data_key(key[len(store.key_prefix) :]):
        return "data", None
    return "other", None


async def _ttl_status(store: SessionStore) -> str:
    try:
        answer = await store.client.call("DescribeTimeToLive", {"TableName": store.layout.table})
    except DynamoDBError as exc:
        if exc.code == "UnknownOperationException":
            return "not supported by this server"
        raise
    ttl = answer.get("TimeToLiveDescription", {})
    status = str(ttl.get("TimeToLiveStatus", "unknown"))
    return f"{status} on {ttl['AttributeName']}" if ttl.get("AttributeName") else status


def _session_id(value: str) -> str:
    if not is_well_formed(value):
        raise ConfigurationError("not a session id: 43 characters of A-Z, a-z, 0-9, - and _")
    return value


async def _inspect(store: SessionStore, args: argparse.Namespace) -> str:
    sid = _session_id(args.session_id)
    storage_key = store.storage_key(sid)
    answer = await store.client.call("GetItem", store.requests.read(storage_key, consistent=True))
    item = answer.get("Item")
    if not item:
        raise ConfigurationError(f"no session stored under {storage_key}")
    parsed = store.layout.parse(item)
    expiry = parsed.expiry(store.absolute_lifetime_s)
    now = store._clock()
    state = "live" if expiry > now else "ended"
    if "moved_to" in item:
        state = "moved at login (ended)"
    record: dict[str, Any] = {
        "storage_key": storage_key,
        "state": state,
        "version": parsed.version,
        "created": _iso(parsed.created),
        "touched": _iso(parsed.touched_ms / 1000),
        "expires": _iso(expiry),
        "size_bytes": item_size(item),
    }
    if parsed.data_ref is not None:
        record["data_item"] = parsed.data_ref
    if args.data:
        blob = await store._data_of(storage_key, parsed)
        record["data"] = None if blob is None else store._decode(blob)
    return json.dumps(record, indent=2, default=str)


async def _revoke(store: SessionStore, args: argparse.Namespace) -> str:
    sid = _session_id(args.session_id)
    storage_key = store.storage_key(sid)
    if await store.destroy(sid):
        return f"session {storage_key} ended"
    return f"no session stored under {storage_key}: nothing to end"


async def _revoke_user(store: SessionStore, args: argparse.Namespace) -> str:
    keep = args.keep
    if keep is not None:
        _session_id(keep)
    ended = await store.revoke_user(args.user, keep=keep)
    return f"ended {ended} sessions of that user" + (" (one kept)" if keep else "")


async def _ensure_table(store: SessionStore, args: argparse.Namespace) -> str:
    await store.ensure_table()
    index = " with its user index" if store.user_key else ""
    return f"table {store.layout.table} is ACTIVE{index}"


async def _purge(store: SessionStore, args: argparse.Namespace) -> str:
    deleted = await store.purge_expired(grace=args.grace)
    return f"deleted {deleted} expired items (sessions and data items) from {store.layout.table}"


RUNNERS: dict[str, Callable[[SessionStore, argparse.Namespace], Awaitable[str]]] = {
    "ensure-table": _ensure_table,
    "stats": _stats,
    "inspect": _inspect,
    "revoke": _revoke,
    "revoke-user": _revoke_user,
    "purge-expired": _purge,
}


async def _run(args: argparse.Namespace) -> str:
    async with _store(args) as store:
        return await RUNNERS[args.command](store, args)


def _offline(args: argparse.Namespace) -> str:
    """The commands that need no connection: they print what to set up."""
    store = _store(args)
    if args.command == "iam-policy":
        policy = iam_policy(
            store.layout,
            region=args.region or "*",
            account=args.account_id,
            admin=not args.sessions_only,
        )
        return json.dumps(policy, indent=2)
    return (
        cloudformation(store.layout) if args.format == "cloudformation" else terraform(store.layout)
    )


def main(argv: Iterable[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(_as_written(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command in ("iam-policy", "template"):
            output = _offline(args)
        else:
            output = asyncio.run(_run(args))
    except CyclicSessError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(output.rstrip("\n"))
    return 0
