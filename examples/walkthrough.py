"""Walk one session through its life on a DynamoDB-compatible server, printing each step.

    make walkthrough                             # on a local dynalite, started and stopped
    CYCLIC_DB=my-table python -m examples.walkthrough   # on real DynamoDB (AWS_* set)

Locally, `make demo` names the server in CYCLICSESS_TEST_SERVERS.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from cyclicsess import SessionConflict, SessionNotFound, SessionStore
from examples.serve import local_endpoint


def step(text: str) -> None:
    print(f"\n-- {text}")


async def main() -> None:
    endpoint = local_endpoint()
    table = os.environ.get("CYCLIC_DB", "cyclicsess-demo")
    where = endpoint or "DynamoDB (from your AWS_* settings)"
    print(f"cyclicsess walkthrough: table {table!r} on {where}")
    async with SessionStore(
        table, endpoint_url=endpoint, ttl=timedelta(hours=1), touch_interval=timedelta(0)
    ) as store:
        step("ensure_table(): create the table if needed, wait for ACTIVE, enable TTL")
        await store.ensure_table()

        step("create(): a new session, written only if its key is new")
        sid = await store.create({"user": "ada", "cart": []})
        print(f"   id (cookie value)   {sid}")
        print(f"   stored under        {store.storage_key(sid)}  (a hash, never the id)")

        step("get(): one strongly consistent GetItem")
        record = await store.get(sid)
        if record is None:
            raise SystemExit("the session just created cannot be read back")
        print(f"   data={record.data} version={record.version} expires_at={record.expires_at}")

        step("set(version=...): an UpdateItem that only applies to the version we read")
        version = await store.set(sid, {"user": "ada", "cart": ["book"]}, version=record.version)
        print(f"   saved, now version {version}")
        try:
            await store.set(sid, {"user": "ada", "cart": ["stale"]}, version=record.version)
        except SessionConflict as exc:
            print(f"   a second write from the same old version is refused: {exc}")

        step("touch(): renews the lifetime, never the data")
        print(f"   wrote: {await store.touch(sid)}")

        step("regenerate(): new id at login, same data, old id dead")
        new_sid = await store.regenerate(sid)
        print(f"   old id -> {await store.get(sid)}")
        renewed = await store.get(new_sid)
        print(f"   new id -> data={renewed.data if renewed else None}")

        step("destroy(): gone for good")
        await store.destroy(new_sid)
        print(f"   get -> {await store.get(new_sid)}, touch -> {await store.touch(new_sid)}")
        try:
            await store.set(new_sid, {"user": "mallory"})
        except SessionNotFound as exc:
            print(f"   a late save does not bring it back: {exc}")
    print("\ndone.")


if __name__ == "__main__":
    asyncio.run(main())
