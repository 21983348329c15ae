"""The command line: table set-up and maintenance.

    python -m cyclicsess ensure-table TABLE [--endpoint-url URL] [--hash-key id] [--range-key sk]
    python -m cyclicsess purge-expired TABLE [--grace 5m] [--endpoint-url URL] [--key-prefix sess:]

Region and credentials come from the usual ``AWS_*`` settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import timedelta

from .errors import CyclicSessError
from .store import SessionStore

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """A duration such as ``90``, ``30s``, ``5m``, ``2h`` or ``1d`` (seconds without a unit)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 5m, 2h or 1d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cyclicsess", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("ensure-table", "create the table if missing, wait for ACTIVE, enable TTL"),
        ("purge-expired", "delete every expired session now"),
    ]:
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("table")
        command.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8000")
        command.add_argument("--region")
        command.add_argument("--hash-key", default="id")
        command.add_argument("--range-key")
        command.add_argument("--key-prefix", default="sess:")
        if name == "purge-expired":
            command.add_argument(
                "--grace",
                type=duration,
                default=timedelta(minutes=5),
                help="delete only sessions that ended at least this long ago by this "
                "host's clock (default 5m): how far the clocks of this host and of the "
                "web servers may disagree",
            )
    return parser


async def _run(args: argparse.Namespace) -> str:
    async with SessionStore(
        args.table,
        endpoint_url=args.endpoint_url,
        region=args.region,
        hash_key=args.hash_key,
        range_key=args.range_key,
        key_prefix=args.key_prefix,
    ) as store:
        if args.command == "ensure-table":
            await store.ensure_table()
            return f"table {args.table} is ACTIVE"
        deleted = await store.purge_expired(grace=args.grace)
        return f"deleted {deleted} expired sessions from {args.table}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        print(asyncio.run(_run(args)))
    except CyclicSessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
