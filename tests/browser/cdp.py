"""Just enough of the Chrome DevTools Protocol to drive a headless Chromium from a test.

::

    browser = await Browser.launch()
    try:
        await browser.navigate("http://127.0.0.1:8080/")
        await browser.type("input[name=name]", "ada")
        await browser.click("#login")          # submits the form, waits for the next page
        print(await browser.evaluate("document.title"), await browser.cookies())
    finally:
        await browser.close()

Chromium runs as a child in its own process group with a fresh profile in a
temporary directory; ``close`` kills the group and removes the directory.
Every wait is bounded and fails with :class:`BrowserError`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = os.environ.get("CYCLICSESS_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_S = 15.0

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class BrowserError(RuntimeError):
    """Chromium did not start, answer or navigate in time, or a page script failed."""


class Browser:
    """One headless Chromium and a DevTools connection to its first page."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, timeout: float) -> None:
        self.proc = proc
        self.workdir = workdir
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._closed = False

    # -- life cycle ---------------------------------------------------------------

    @classmethod
    async def launch(cls, executable: str = CHROMIUM, timeout: float = TIMEOUT_S) -> Browser:
        """Start Chromium and connect to its page; raise BrowserError if that fails."""
        if not os.access(executable, os.X_OK):
            raise BrowserError(
                f"Chromium not found at {executable}: install it "
                "(`apt-get install chromium` on Debian) or set CYCLICSESS_CHROMIUM"
            )
        proc, workdir = _spawn(executable)
        browser = cls(proc, workdir, timeout)
        try:
            await browser._connect(workdir / "profile" / "DevToolsActivePort")
        except BaseException:
            await browser.close()
            raise
        return browser

    def _log_tail(self) -> str:
        try:
            text = (self.workdir / "chromium.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-2000:] or "(empty log)"

    async def _connect(self, port_file: Path) -> None:
        deadline = time.monotonic() + self.timeout
        port = None
        while port is None:
            if self.proc.poll() is not None:
                raise BrowserError(
                    f"Chromium exited with {self.proc.returncode} before listening:\n"
                    + self._log_tail()
                )
            port = _read_port(port_file)
            if port is None:
                if time.monotonic() > deadline:
                    raise BrowserError(
                        f"no {port_file.name} after {self.timeout:.0f} s:\n" + self._log_tail()
                    )
                await asyncio.sleep(0.05)

        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        target = None
        while target is None:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with self._http.get(f"http://127.0.0.1:{port}/json") as response:
                    targets = await response.json(content_type=None)
                target = next((t for t in targets if t.get("type") == "page"), None)
            if target is None:
                if time.monotonic() > deadline:
                    raise BrowserError(f"no page target on DevTools port {port}")
                await asyncio.sleep(0.05)
        url = target["webSocketDebuggerUrl"]
        if not url.startswith("ws://127.0.0.1:"):
            raise BrowserError(f"unexpected DevTools address {url}")
        self._ws = await self._http.ws_connect(
            url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout)
        )
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Network.enable")

    async def close(self) -> None:
        """Disconnect, kill Chromium's process group and remove its profile."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._ws is not None:
                await self._ws.close()
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
            if self._http is not None:
                await self._http.close()
        finally:
            try:
                await self._kill()
            finally:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _kill(self) -> None:
        """End Chromium: politely (it reaps its helpers), then by force, by pid."""
        pid = self.proc.pid
        helpers = {p for p, group, _ in _live_processes() if group == pid}
        helpers.update(_processes_naming(self.workdir))
        if self.proc.poll() is None:
            self.proc.terminate()
            if await self._gone(5.0):
                await _reaped(helpers, 5.0)
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        for straggler in _processes_naming(self.workdir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(straggler, signal.SIGKILL)
        if not await self._gone(5.0):
            raise BrowserError(f"Chromium (process group {pid}) survived SIGKILL")
        await _reaped(helpers, 5.0)

    async def _gone(self, within: float) -> bool:
        """Whether Chromium's group and its crash handlers end ``within`` seconds."""
        deadline = time.monotonic() + within
        while (
            self.proc.poll() is None
            or _group_alive(self.proc.pid)
            or _processes_naming(self.workdir)
        ):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # -- protocol -----------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        error: BaseException = BrowserError("DevTools connection closed")
        try:
            async for message in self._ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                    continue
                for waiter in list(self._waiters):
                    method, future = waiter
                    if method == data.get("method") and not future.done():
                        future.set_result(data.get("params", {}))
                        self._waiters.remove(waiter)
        except Exception as exc:
            error = exc
        finally:
            for future in [*self._pending.values(), *(f for _, f in self._waiters)]:
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            self._waiters.clear()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method on the page; its result, or BrowserError."""
        if self._ws is None or self._closed:
            raise BrowserError("the browser is not connected")
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        try:
            answer = await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            self._pending.pop(call_id, None)
            raise BrowserError(f"{method}: no answer in {self.timeout:.0f} s") from None
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next ``method`` event; create it before causing the event."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        return future

    async def _navigation(self, what: str, action: Callable[[], Awaitable[Any]]) -> None:
        """Do ``action`` and wait for the load event of the page it leads to."""
        loaded = self.expect("Page.loadEventFired")
        try:
            await action()
            await asyncio.wait_for(loaded, self.timeout)
        except asyncio.TimeoutError:
            raise BrowserError(f"{what}: no page loaded in {self.timeout:.0f} s") from None
        finally:
            loaded.cancel()
            self._waiters = [w for w in self._waiters if w[1] is not loaded]

    # -- what a test does ---------------------------------------------------------

    async def navigate(self, url: str) -> None:
        """Open ``url`` and wait until its load event."""

        async def go() -> None:
            result = await self.send("Page.navigate", url=url)
            if result.get("errorText"):
                raise BrowserError(f"navigate {url}: {result['errorText']}")

        await self._navigation(f"navigate {url}", go)

    async def reload(self) -> None:
        """Reload the page and wait until its load event."""
        await self._navigation("reload", lambda: self.send("Page.reload", ignoreCache=True))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}\n{expression}")
        return result["result"].get("value")

    async def text(self, selector: str) -> str:
        """The text of the element ``selector`` matches."""
        value = await self.evaluate(f"{_element(selector)}.textContent")
        return str(value)

    async def exists(self, selector: str) -> bool:
        """Whether ``selector`` matches an element."""
        return bool(await self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))

    async def html(self) -> str:
        """The page's current HTML."""
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def type(self, selector: str, text: str) -> None:
        """Focus the field ``selector`` matches, clear it and type ``text`` into it."""
        await self.evaluate(f"(el => {{ el.focus(); el.value = ''; }})({_element(selector)})")
        await self.send("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        """Click ``selector`` (a form's button) and wait for the page it leads to."""
        await self._navigation(
            f"click {selector}", lambda: self.evaluate(f"{_element(selector)}.click()")
        )

    async def cookies(self, *urls: str) -> list[dict[str, Any]]:
        """The cookies the browser would send to ``urls``, or all it holds if none given."""
        if urls:
            result = await self.send("Network.getCookies", urls=list(urls))
        else:
            result = await self.send("Storage.getCookies")
        cookies: list[dict[str, Any]] = result["cookies"]
        return cookies

    async def screenshot(self, path: str | os.PathLike[str]) -> bytes:
        """Save a PNG of the page to ``path`` and return it."""
        result = await self.send("Page.captureScreenshot", format="png")
        png = base64.b64decode(result["data"])
        _write(Path(path), png)
        return png


def _spawn(executable: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start Chromium on a fresh profile; its process and its temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="cyclicsess-chromium-"))
    profile = workdir / "profile"
    profile.mkdir()
    with open(workdir / "chromium.log", "wb") as log:
        proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            # Chromium's crash handler daemonizes out of that group and keeps its
            # database under $XDG_CONFIG_HOME: keep it in our directory, where
            # close() finds it. (--disable-crashpad-for-testing would be neater,
            # but with it Debian's Chromium 156 aborts every navigation.)
            env={**os.environ, "XDG_CONFIG_HOME": str(workdir / "config")},
        )
    return proc, workdir


def _read_port(port_file: Path) -> int | None:
    """The DevTools port Chromium wrote (first line of DevToolsActivePort), if yet."""
    try:
        lines = port_file.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 2 or not lines[0].isdigit():  # not written completely yet
        return None
    return int(lines[0])


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _element(selector: str) -> str:
    """JavaScript for the element ``selector`` matches; the script throws if none does."""
    quoted = json.dumps(selector)
    return (
        f"(document.querySelector({quoted}) ?? "
        f"(() => {{ throw new Error('no element matches ' + {quoted}); }})())"
    )


def _live_processes() -> list[tuple[int, int, Path]]:
    """(pid, process group, /proc dir) of every process that is not a zombie."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                found.append((int(stat.parent.name), int(fields[2]), stat.parent))
    return found


async def _reaped(pids: set[int], within: float) -> None:
    """Give init ``within`` seconds to reap Chromium's orphaned helpers, so ps is clean.

    They are dead already (zombies, reparented to pid 1); this only waits.
    """
    deadline = time.monotonic() + within
    while _any_exists(pids):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


def _any_exists(pids: set[int]) -> bool:
    """Whether any of ``pids`` is still in the process table (zombies included)."""
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies await init, aside)."""
    return any(group == pgid for _, group, _ in _live_processes())


def _processes_naming(workdir: Path) -> list[int]:
    """The pids of live processes whose command line mentions ``workdir``."""
    needle = str(workdir).encode() + b"/"
    pids = []
    for pid, _, proc_dir in _live_processes():
        with contextlib.suppress(OSError):
            if needle in (proc_dir / "cmdline").read_bytes():
                pids.append(pid)
    return pids
