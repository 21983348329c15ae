"""Every Python snippet of the README runs as written, against a real server.

A snippet is a whole program. One that defines a web ``app`` (and serves it
under ``if __name__ == "__main__"``) is loaded as a module, its app served on
loopback by its own server (aiohttp's, or uvicorn), and a reader's visits
driven through it; any other runs as ``__main__``. The only thing the
test adds is what a reader sets: ``AWS_ENDPOINT_URL_DYNAMODB`` pointing at
the local server (and the local servers' dummy credentials).
"""

from __future__ import annotations

import asyncio
import re
import sys
import types
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.serving import serve

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def is_web_app(code: str) -> bool:
    return "run_app(" in code or "uvicorn.run(" in code


@pytest.fixture
def reader_settings(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


#: What a reader does with a web snippet: visit, log in, visit, log out, visit.
VISITS = [("GET", "/"), ("POST", "/login"), ("GET", "/"), ("POST", "/logout"), ("GET", "/")]


async def drive(app: Any) -> list[tuple[str, int, str]]:
    """Serve ``app`` on loopback with its own server and walk it through :data:`VISITS`."""
    base, stop = await serve(app)
    seen = []
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            for method, path in VISITS:
                async with browser.request(method, base + path) as response:
                    seen.append((method, response.status, await response.text()))
    finally:
        await stop()
    return seen


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) >= 7
    assert sum(map(is_web_app, SNIPPETS)) >= 5


@pytest.mark.usefixtures("reader_settings")
@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_snippet_runs_as_written(number: int) -> None:
    code = SNIPPETS[number]
    compiled = compile(code, f"README.md snippet {number + 1}", "exec")
    if not is_web_app(code):
        exec(compiled, {"__name__": "__main__"})
        return
    # a real module: frameworks resolve a handler's annotations through sys.modules
    module = types.ModuleType(f"readme_snippet_{number}")
    sys.modules[module.__name__] = module
    try:
        exec(compiled, module.__dict__)
        seen = asyncio.run(drive(module.app))
    finally:
        del sys.modules[module.__name__]
    assert all(status == 200 for _, status, _ in seen), seen
    pages = [text for method, _, text in seen if method == "GET"]
    assert "ada" not in pages[0]
    assert "ada" in pages[1]  # logged in: the redirect after login landed on /
    assert "ada" not in pages[-1]  # logged out
