"""What a session middleware costs the app per request: cyclicsess against what people use.

    python tests/servers.py run --only dynalite -- .venv-bench/bin/python -m bench.middleware
        [--quick] [--out FILE]

The same small app (log in once, then pages that read the session and, one in
ten, change it) on two frameworks and several ways of keeping sessions, each
served by its own process on 127.0.0.1:

========================= ================================================================
aiohttp / none            no sessions: the baseline of the aiohttp variants
aiohttp / cyclicsess      ``cyclicsess.aiohttp`` on dynalite
aiohttp / aiohttp-session aiohttp-session's ``RedisStorage`` on a local redis-server
  + Redis                 (what aiohttp users run today)
aiohttp / cookie          aiohttp-session's ``EncryptedCookieStorage`` (no server side)
starlette / none          no sessions: the baseline of the Starlette variants (uvicorn)
starlette / cyclicsess    ``cyclicsess.asgi.SessionMiddleware`` on dynalite
starlette / starsessions  starsessions with its Redis store
  + Redis
starlette / cookie        Starlette's own signed-cookie ``SessionMiddleware``
========================= ================================================================

A load generator in another process plays 32 concurrent users, each with
its own cookie jar. The cost of a middleware is the app process's CPU per
request (``/proc/PID/stat``) minus its framework's no-session baseline, in
the same run; variants run in interleaved rounds after a warm-up, medians of
rounds. The database's own CPU (dynalite or redis-server) is shown apart: it
is not the app's. redis-server is started and stopped by pid here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
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
from yarl import URL

from bench import peers
from bench.peers import ROOT, cpu_seconds, listening_pid
from tests.harness import free_port, interleaved, percentile, started, stop

VARIANTS = (
    "aiohttp/none",
    "aiohttp/cyclicsess",
    "aiohttp/aiohttp-session+redis",
    "aiohttp/cookie",
    "starlette/none",
    "starlette/cyclicsess",
    "starlette/starsessions+redis",
    "starlette/cookie",
)
#: What each variant's cost is measured against.
BASELINE = {"aiohttp": "aiohttp/none", "starlette": "starlette/none"}
#: The peer each cyclicsess variant is held to (the target: no more overhead).
PEER = {
    "aiohttp/cyclicsess": "aiohttp/aiohttp-session+redis",
    "starlette/cyclicsess": "starlette/starsessions+redis",
}
TABLE = "bench-middleware"
CONCURRENCY = 32
WRITE_EVERY = 10
LOAD_TIMEOUT_S = 300
SECRET = "bench-secret-0123456789abcdef0123456789"
#: A realistic logged-in session, ~250 bytes.
PROFILE = {
    "email": "ada.lovelace@example.com",
    "roles": ["admin", "editor", "reviewer"],
    "csrf": "q3Jm0XyZ8vKd2LpW9sTnR4bHc7eF1gAa",
    "locale": "en-GB",
    "cart": [{"sku": "BK-1843-AE", "qty": 1}, {"sku": "PC-0001-DE", "qty": 2}],
}


def page(session: MutableMapping[str, Any], write: bool) -> str:
    """What every variant's page does with its session."""
    if write:
        session["n"] = session.get("n", 0) + 1
    return f"Hello, {session.get('user')}! n={session.get('n', 0)}"


def log_in(session: MutableMapping[str, Any], name: str) -> None:
    session["user"] = name
    session.update(PROFILE)


# -- the apps (``serve VARIANT``) -----------------------------------------------------------


def _store() -> Any:
    from cyclicsess import SessionStore

    return SessionStore(
        TABLE, endpoint_url=peers.dynalite_url(), region=peers.REGION, ttl=timedelta(hours=1)
    )


def aiohttp_app(variant: str) -> Any:
    import aiohttp_session
    from aiohttp import web

    from cyclicsess.aiohttp import get_session, new_session, setup

    app = web.Application()
    nobody: dict[str, Any] = {"user": "nobody"}

    async def none(_: web.Request) -> MutableMapping[str, Any]:
        return dict(nobody)

    get: Callable[[web.Request], Awaitable[MutableMapping[str, Any]]]
    fresh: Callable[[web.Request], Awaitable[MutableMapping[str, Any]]]
    if variant == "aiohttp/cyclicsess":
        store = _store()
        setup(app, store)
        get, fresh = get_session, new_session

        async def create(_: web.Application) -> None:
            await store.ensure_table()

        app.on_startup.append(create)
    elif variant == "aiohttp/aiohttp-session+redis":
        from aiohttp_session.redis_storage import RedisStorage
        from redis import asyncio as aioredis

        redis = aioredis.from_url(os.environ["BENCH_REDIS_URL"])
        aiohttp_session.setup(app, RedisStorage(redis))
        get, fresh = aiohttp_session.get_session, aiohttp_session.new_session
    elif variant == "aiohttp/cookie":
        from aiohttp_session.cookie_storage import EncryptedCookieStorage

        aiohttp_session.setup(app, EncryptedCookieStorage(os.urandom(32)))
        get, fresh = aiohttp_session.get_session, aiohttp_session.new_session
    else:
        get = fresh = none

    async def home(request: web.Request) -> web.Response:
        session = await get(request)
        text = page(session, request.query.get("write") == "1")
        if hasattr(session, "changed") and request.query.get("write") == "1":
            session.changed()
        return web.Response(text=text)

    async def login(request: web.Request) -> web.Response:
        session = await fresh(request)
        log_in(session, request.query["name"])
        raise web.HTTPSeeOther("/")

    app.router.add_get("/", home)
    app.router.add_post("/login", login)
    return app


def starlette_app(variant: str) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse
    from starlette.routing import Route

    middleware = []
    regenerate: Callable[[Request], Awaitable[Any]] | None = None
    if variant == "starlette/cyclicsess":
        from cyclicsess.asgi import SessionMiddleware, regenerate_session

        store = _store()
        asyncio.run(store.ensure_table())
        middleware = [Middleware(SessionMiddleware, store=store)]
        regenerate = regenerate_session
    elif variant == "starlette/starsessions+redis":
        from starsessions import SessionAutoloadMiddleware
        from starsessions import SessionMiddleware as StarSessions
        from starsessions.stores.redis import RedisStore

        middleware = [
            Middleware(
                StarSessions,
                store=RedisStore(os.environ["BENCH_REDIS_URL"]),
                cookie_https_only=False,  # the load generator speaks plain HTTP
            ),
            Middleware(SessionAutoloadMiddleware),
        ]
    elif variant == "starlette/cookie":
        from starlette.middleware.sessions import SessionMiddleware as CookieSessions

        middleware = [Middleware(CookieSessions, secret_key=SECRET)]
    nobody: dict[str, Any] = {"user": "nobody"}

    def session_of(request: Request) -> MutableMapping[str, Any]:
        return request.session if middleware else dict(nobody)

    async def home(request: Request) -> PlainTextResponse:
        write = request.query_params.get("write") == "1"
        return PlainTextResponse(page(session_of(request), write))

    async def login(request: Request) -> RedirectResponse:
        session = await regenerate(request) if regenerate else session_of(request)
        log_in(session, request.query_params["name"])
        return RedirectResponse("/", status_code=303)

    routes = [Route("/", home), Route("/login", login, methods=["POST"])]
    return Starlette(routes=routes, middleware=middleware)


def serve(variant: str) -> None:
    """Serve one variant on a free loopback port; print the port; stop on SIGTERM."""
    # the TCP protocol number: asyncio then sets TCP_NODELAY on accepted connections
    # (uvicorn's responses come in two writes; without it each waits ~40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    if variant.startswith("aiohttp/"):
        from aiohttp import web

        web.run_app(aiohttp_app(variant), sock=sock, print=None, access_log=None)
    else:
        import uvicorn

        app = starlette_app(variant)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", http="httptools"
        )
        uvicorn.Server(config).run(sockets=[sock])


# -- the load generator (``load URL REQUESTS``) ---------------------------------------------


async def generate_load(url: str, requests: int) -> dict[str, Any]:
    """Play the users; return timings, statuses and how many pages were wrong."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wrong = 0
    clock = time.perf_counter
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    share, extra = divmod(requests, CONCURRENCY)

    async def user(number: int) -> None:
        nonlocal wrong
        name = f"user{number}"
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
        async with aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=jar
        ) as http:

            async def request(method: str, path: str) -> tuple[int, str]:
                start = clock()
                async with http.request(method, url + path, allow_redirects=False) as answer:
                    body = await answer.text()
                latencies.append((clock() - start) * 1e3)
                statuses[answer.status] += 1
                return answer.status, body

            status, _ = await request("POST", f"/login?name={name}")
            wrong += status != 303
            for n in range(1, share + (number < extra)):
                write = "1" if n % WRITE_EVERY == 0 else "0"
                status, body = await request("GET", f"/?write={write}")
                wrong += status != 200 or not (name in body or "nobody" in body)

    cpu, wall = time.process_time(), clock()
    try:
        await asyncio.gather(*(user(i) for i in range(CONCURRENCY)))
    finally:
        await connector.close()
    return {
        "requests": len(latencies),
        "wall": clock() - wall,
        "cpu": time.process_time() - cpu,
        "latencies": latencies,
        "statuses": dict(statuses),
        "wrong": wrong,
    }


# -- the orchestrator ---------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on loopback (no persistence); its URL and pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed: `apt-get install redis-server` (Debian)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        stop(process)


@contextmanager
def app_server(variant: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start the app server of ``variant``; yield its URL and pid; stop it by pid."""
    argv = [sys.executable, "-m", "bench.middleware", "serve", variant]
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "text": True, "cwd": ROOT}
    with started(argv, env={**os.environ, **env}, **options) as process:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"{variant} app did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{port}", process.pid


def run_load(url: str, requests: int) -> dict[str, Any]:
    """One load-generator process against ``url``; its JSON answer."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.middleware", "load", url, str(requests)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, _ = process.communicate(timeout=LOAD_TIMEOUT_S)
    finally:
        if process.poll() is None:
            stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def measure(requests: int, rounds: int, warmup: int, backends: dict[str, int]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with ExitStack() as stack:
        redis_url, redis_pid = stack.enter_context(redis_server())
        backends["redis"] = redis_pid
        env = {"BENCH_REDIS_URL": redis_url}
        servers = {v: stack.enter_context(app_server(v, env)) for v in VARIANTS}
        for url, _ in servers.values():
            run_load(url, warmup)
        for variant in interleaved(VARIANTS, rounds):
            url, pid = servers[variant]
            before = {name: cpu_seconds(p) for name, p in backends.items()}
            app_cpu = cpu_seconds(pid)
            result = run_load(url, requests)
            result["app_cpu"] = cpu_seconds(pid) - app_cpu
            result["backend_cpu"] = {n: cpu_seconds(p) - before[n] for n, p in backends.items()}
            runs[variant].append(result)
    return runs


def report(runs: dict[str, list[dict[str, Any]]], requests: int, rounds: int, before: str) -> str:
    med = statistics.median

    def per_request(variant: str, key: str) -> float:
        return float(med(run[key] / run["requests"] for run in runs[variant]) * 1e6)

    def backend(variant: str) -> float:
        name = "redis" if "redis" in variant else "dynalite"
        if "cyclicsess" not in variant and "redis" not in variant:
            return 0.0
        return float(med(run["backend_cpu"][name] / run["requests"] for run in runs[variant]) * 1e6)

    def overhead(variant: str) -> float:
        baseline = BASELINE[variant.split("/")[0]]
        return per_request(variant, "app_cpu") - per_request(baseline, "app_cpu")

    lines = [
        f"A session middleware's cost to the app: {requests} requests per round from a "
        f"separate load-generator process ({CONCURRENCY} users at once, each logging in once "
        f"and then reading its session, one page in {WRITE_EVERY} changing it), {rounds} "
        "interleaved rounds; app CPU per request from /proc minus the framework's "
        "no-session baseline in the same run (medians of rounds).",
        peers.versions(
            ("cyclicsess", "aiohttp", "aiohttp-session", "redis", "starlette", "starsessions")
        ),
        peers.machine_note(before),
        "",
        "| framework / sessions | requests/s | p99 ms | app CPU µs/req | middleware µs/req "
        "| vs its peer | database CPU µs/req | bad answers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        latencies = sorted(x for run in runs[variant] for x in run["latencies"])
        rate = med(run["requests"] / run["wall"] for run in runs[variant])
        done = sum(run["requests"] for run in runs[variant])
        wrong = sum(run["wrong"] for run in runs[variant])
        is_baseline = variant in BASELINE.values()
        extra = "baseline" if is_baseline else f"{overhead(variant):.0f}"
        versus = "-"
        if variant in PEER:
            versus = f"{overhead(variant) / overhead(PEER[variant]):.2f}x"
        lines.append(
            f"| {variant} | {rate:.0f} | {percentile(latencies, 0.99):.1f} "
            f"| {per_request(variant, 'app_cpu'):.0f} | {extra} | {versus} "
            f"| {backend(variant):.0f} | {wrong} of {done} |"
        )
    statuses: Counter[str] = Counter()
    for variant in VARIANTS:
        for run in runs[variant]:
            statuses.update({f"{variant} {code}": n for code, n in run["statuses"].items()})
    lines += ["", "Statuses: " + ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items())) + "."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "load"):
        peers.use_fake_credentials()
        if sys.argv[1] == "serve":
            serve(sys.argv[2])
        else:
            json.dump(asyncio.run(generate_load(sys.argv[2], int(sys.argv[3]))), sys.stdout)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    requests, rounds, warmup = (800, 1, 200) if args.quick else (4000, 3, 600)
    peers.use_fake_credentials()
    port = URL(peers.dynalite_url()).port
    assert port is not None
    backends = {"dynalite": listening_pid(port)}
    # a SIGTERM (from `timeout`, say) unwinds like an error: every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    before = peers.load_average()
    table = report(measure(requests, rounds, warmup, backends), requests, rounds, before)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
