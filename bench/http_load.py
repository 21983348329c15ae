"""The demo app under HTTP load: cyclicsess sessions vs cookie sessions vs none.

    python tests/servers.py run --only dynalite -- .venv/bin/python bench/http_load.py
        [--quick] [--out FILE]

Three variants of the same shop (examples/app.py: the same pages and logic),
each served by its own process on 127.0.0.1:

- ``cyclicsess``: ``examples.app.make_app`` on a ``SessionStore`` in the
  dynalite named by ``CYCLICSESS_TEST_SERVERS``;
- ``cookie``: the same handlers on aiohttp-session's ``EncryptedCookieStorage``
  (the session lives in an encrypted cookie: no database);
- ``none``: the same handlers with no sessions at all (every visitor is the
  same logged-in user, nothing is stored).

A separate load-generator process (this file's ``load`` mode, an aiohttp
client) plays 64 users, 32 at a time, each with its own cookie jar: a user
logs in once (POST /login), then browses: GET / (which counts a visit: a
session write) with every 8th request a POST /cart. Redirects are not
followed: each request is one measured request. Every page is checked to
greet its own user, so the sessions are real. Variants run in interleaved
rounds after a warm-up; requests/s is the median of rounds, latency over all
requests; CPU per request of the app server and of dynalite comes from
``/proc/PID/stat``, the load generator's from its own ``process_time``.
Every process is stopped by pid at the end, on errors too.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import peers
from aiohttp import web
from peers import ROOT, cpu_seconds, listening_pid, percentile
from yarl import URL

VARIANTS = ("cyclicsess", "cookie", "none")
TABLE = "bench-http"
CONCURRENCY = 32
USERS_PER_WORKER = 2
CART_EVERY = 8
LOAD_TIMEOUT_S = 300


# -- the app server (``serve VARIANT``) ----------------------------------------------------

Load = Callable[[web.Request], Awaitable[MutableMapping[str, Any]]]


def equivalent_app(load: Load, fresh: Load, footer: Callable[[Any], tuple[str, str, str]]) -> Any:
    """examples/app.py's handlers on another way of keeping sessions."""
    from examples.app import PAGE

    def render(session: Any, body: str) -> web.Response:
        stored, version, expires = footer(session)
        return web.Response(
            content_type="text/html",
            text=PAGE.format(body=body, hash=stored, version=version, expires=expires),
        )

    def changed(session: Any) -> None:
        if hasattr(session, "changed"):
            session.changed()  # aiohttp-session sees no in-place changes by itself

    async def home(request: web.Request) -> web.Response:
        session = await load(request)
        user = session.get("user")
        if user is None:
            body = """<p id="greeting">You are not logged in.</p>
<form method="post" action="/login"><input name="name" placeholder="your name" required>
<button id="login">Log in</button></form>"""
            return render(session, body)
        session["visits"] = session.get("visits", 0) + 1
        cart = session.get("cart", [])
        items = "".join(f"<li>{html.escape(item)}</li>" for item in cart) or "<li>(empty)</li>"
        body = f"""<p id="greeting">Hello, {html.escape(user)}!</p>
<p>Visits this session: <span id="visits">{session["visits"]}</span></p>
<h2>Cart</h2><ul id="cart">{items}</ul>
<form method="post" action="/cart"><input name="item" placeholder="item" required>
<button id="add">Add</button></form>
<form method="post" action="/cart/empty"><button id="empty">Empty cart</button></form>
<form method="post" action="/logout"><button id="logout">Log out</button></form>"""
        return render(session, body)

    async def login(request: web.Request) -> web.Response:
        name = str((await request.post()).get("name", "")).strip()[:64]
        if name:
            session = await fresh(request)
            session["user"] = name
        raise web.HTTPSeeOther("/")

    async def add_to_cart(request: web.Request) -> web.Response:
        item = str((await request.post()).get("item", "")).strip()[:64]
        session = await load(request)
        if item and "user" in session:
            session.setdefault("cart", []).append(item)
            changed(session)
        raise web.HTTPSeeOther("/")

    async def empty_cart(request: web.Request) -> web.Response:
        session = await load(request)
        session.pop("cart", None)
        raise web.HTTPSeeOther("/")

    async def logout(request: web.Request) -> web.Response:
        session = await load(request)
        if hasattr(session, "invalidate"):
            session.invalidate()
        raise web.HTTPSeeOther("/")

    return home, login, add_to_cart, empty_cart, logout


def build_app(variant: str) -> web.Application:
    if variant == "cyclicsess":
        from cyclicsess import SessionStore
        from examples.app import make_app

        store = SessionStore(
            TABLE, endpoint_url=peers.dynalite_url(), region=peers.REGION, ttl=timedelta(hours=1)
        )
        return make_app(store)
    app = web.Application()
    if variant == "cookie":
        import aiohttp_session
        from aiohttp_session.cookie_storage import EncryptedCookieStorage

        storage = EncryptedCookieStorage(os.urandom(32), cookie_name="demo_session", max_age=3600)
        aiohttp_session.setup(app, storage)
        handlers = equivalent_app(
            aiohttp_session.get_session,
            aiohttp_session.new_session,
            lambda session: ("(in the cookie)", "-", "-"),
        )
    elif variant == "none":

        async def anonymous(_: web.Request) -> MutableMapping[str, Any]:
            return {"user": "bench"}

        handlers = equivalent_app(anonymous, anonymous, lambda _: ("(no session)", "-", "-"))
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    home, login, add_to_cart, empty_cart, logout = handlers
    app.router.add_get("/", home)
    app.router.add_post("/login", login)
    app.router.add_post("/cart", add_to_cart)
    app.router.add_post("/cart/empty", empty_cart)
    app.router.add_post("/logout", logout)
    return app


async def serve(variant: str) -> None:
    """Serve one variant on a free port of 127.0.0.1; print the port; stop on SIGTERM."""
    runner = web.AppRunner(build_app(variant), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = site._server
    assert server is not None and server.sockets
    print(server.sockets[0].getsockname()[1], flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# -- the load generator (``load URL REQUESTS``) -----------------------------------------------


async def generate_load(url: str, requests: int, anonymous: bool) -> dict[str, Any]:
    """Play the users; return timings, statuses and how many pages were wrong."""
    users = CONCURRENCY * USERS_PER_WORKER
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wrong = 0
    clock = time.perf_counter
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)

    async def request(
        http: aiohttp.ClientSession, method: str, path: str, data: Any = None
    ) -> tuple[int, bytes]:
        start = clock()
        async with http.request(method, url + path, data=data, allow_redirects=False) as answer:
            body = await answer.read()
        latencies.append((clock() - start) * 1e3)
        statuses[answer.status] += 1
        return answer.status, body

    async def user(number: int, count: int) -> None:
        nonlocal wrong
        name = f"user{number}"
        greeting = f'<p id="greeting">Hello, {"bench" if anonymous else name}!</p>'.encode()
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
        async with aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=jar
        ) as http:
            status, _ = await request(http, "POST", "/login", {"name": name})
            wrong += status != 303
            for n in range(1, count):
                if n % CART_EVERY == 0:
                    status, _ = await request(http, "POST", "/cart", {"item": f"item{n}"})
                    wrong += status != 303
                else:
                    status, body = await request(http, "GET", "/")
                    wrong += status != 200 or greeting not in body

    share, extra = divmod(requests, users)
    counts = [share + (i < extra) for i in range(users)]

    async def worker(index: int) -> None:
        for number in range(index, users, CONCURRENCY):
            await user(number, counts[number])

    cpu, wall = time.process_time(), clock()
    try:
        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    finally:
        await connector.close()
    wall, cpu = clock() - wall, time.process_time() - cpu
    return {
        "requests": len(latencies),
        "wall": wall,
        "cpu": cpu,
        "latencies": latencies,
        "statuses": dict(statuses),
        "wrong": wrong,
    }


# -- the orchestrator ---------------------------------------------------------------------


@contextmanager
def app_server(variant: str) -> Iterator[tuple[str, int]]:
    """Start the app server of ``variant``; yield its URL and pid; stop it by pid."""
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", variant], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"{variant} app did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_load(url: str, requests: int, anonymous: bool) -> dict[str, Any]:
    """One load-generator process against ``url``; its JSON answer."""
    command = [sys.executable, __file__, "load", url, str(requests)]
    process = subprocess.Popen(command + ["--anonymous"] * anonymous, stdout=subprocess.PIPE)
    try:
        out, _ = process.communicate(timeout=LOAD_TIMEOUT_S)
    finally:
        if process.poll() is None:
            stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def measure(
    requests: int, rounds: int, warmup: int, dynalite: int
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with ExitStack() as stack:
        servers = {variant: stack.enter_context(app_server(variant)) for variant in VARIANTS}
        for variant, (url, _) in servers.items():
            run_load(url, warmup, variant == "none")
        order = list(VARIANTS)
        shuffle = random.Random(0)
        for _ in range(rounds):
            shuffle.shuffle(order)
            for variant in order:
                url, pid = servers[variant]
                app_cpu, db_cpu = cpu_seconds(pid), cpu_seconds(dynalite)
                result = run_load(url, requests, variant == "none")
                result["app_cpu"] = cpu_seconds(pid) - app_cpu
                result["db_cpu"] = cpu_seconds(dynalite) - db_cpu
                runs[variant].append(result)
        pids = {variant: pid for variant, (_, pid) in servers.items()}
    return runs, pids


def report(
    runs: dict[str, list[dict[str, Any]]], requests: int, rounds: int, url: str, load_before: str
) -> str:
    med = statistics.median

    def rate(variant: str) -> float:
        return med(run["requests"] / run["wall"] for run in runs[variant])

    def p99(variant: str) -> float:
        return percentile(sorted(x for run in runs[variant] for x in run["latencies"]), 0.99)

    lines = [
        f"The demo app under load from a separate process on 127.0.0.1: {requests} requests "
        f"per round ({CONCURRENCY} concurrent, {CONCURRENCY * USERS_PER_WORKER} users who log "
        f"in once, then GET / with every {CART_EVERY}th request a POST /cart), {rounds} "
        f"interleaved rounds; dynalite at {url}. Requests/s: median of rounds; latency: all "
        "requests; CPU per request from /proc.",
        peers.versions(("cyclicsess", "aiobotocore", "aiohttp", "aiohttp-session", "cryptography")),
        peers.machine_note(load_before),
        "",
        "| sessions | requests/s | vs none | p50 ms | p99 ms | p99 vs none "
        "| app CPU µs/req | dynalite CPU µs/req | load gen CPU µs/req | bad answers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        latencies = sorted(x for run in runs[variant] for x in run["latencies"])
        done = sum(run["requests"] for run in runs[variant])
        app = med(run["app_cpu"] / run["requests"] for run in runs[variant]) * 1e6
        db = med(run["db_cpu"] / run["requests"] for run in runs[variant]) * 1e6
        load = med(run["cpu"] / run["requests"] for run in runs[variant]) * 1e6
        wrong = sum(run["wrong"] for run in runs[variant])
        label = {
            "cyclicsess": "cyclicsess (dynalite)",
            "cookie": "aiohttp-session EncryptedCookieStorage",
            "none": "none",
        }[variant]
        lines.append(
            f"| {label} | {rate(variant):.0f} | {rate(variant) / rate('none'):.2f}x "
            f"| {percentile(latencies, 0.5):.1f} | {p99(variant):.1f} "
            f"| {p99(variant) / p99('none'):.2f}x | {app:.0f} | {db:.0f} | {load:.0f} "
            f"| {wrong} of {done} |"
        )
    statuses: Counter[str] = Counter()
    for variant in VARIANTS:
        for run in runs[variant]:
            statuses.update({f"{variant} {code}": n for code, n in run["statuses"].items()})
    lines += ["", "Statuses: " + ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items())) + "."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "load"):
        sys.path.insert(0, str(ROOT))  # examples.app
        if sys.argv[1] == "serve":
            asyncio.run(serve(sys.argv[2]))
        else:
            result = asyncio.run(
                generate_load(sys.argv[2], int(sys.argv[3]), "--anonymous" in sys.argv)
            )
            json.dump(result, sys.stdout)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    requests, rounds, warmup = (600, 1, 200) if args.quick else (3000, 3, 500)
    peers.use_fake_credentials()
    url = peers.dynalite_url()
    port = URL(url).port
    assert port is not None
    dynalite = listening_pid(port)
    # a SIGTERM (from `timeout`, say) unwinds like an error: every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load_before = peers.load_average()
    runs, _ = measure(requests, rounds, warmup, dynalite)
    table = report(runs, requests, rounds, url, load_before)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
