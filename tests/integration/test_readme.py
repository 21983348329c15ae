"""Every Python snippet of the README runs as written, against a real server.

A snippet is a whole program. One that defines a web ``app`` (and serves it
under ``if __name__ == "__main__"``) is loaded as a module and its app is
driven through its routes; any other runs as ``__main__``. The only thing the
test adds is what a reader sets: ``AWS_ENDPOINT_URL_DYNAMODB`` pointing at
the local server (and the local servers' dummy credentials).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def is_web_app(code: str) -> bool:
    return "run_app(" in code


@pytest.fixture
def reader_settings(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


async def drive_aiohttp(app: web.Application) -> list[tuple[str, str, int, str]]:
    """Visit, log in, visit, log out, visit: every route the app has, in that order."""
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    seen = []
    async with TestClient(TestServer(app)) as client:
        for method, path in [
            ("GET", "/"),
            ("POST", "/login"),
            ("GET", "/"),
            ("POST", "/logout"),
            ("GET", "/"),
        ]:
            if (method, path) not in routes:
                continue
            response = await client.request(method, path)
            seen.append((method, path, response.status, await response.text()))
    return seen


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.usefixtures("reader_settings")
@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_snippet_runs_as_written(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = SNIPPETS[number]
    compiled = compile(code, f"README.md snippet {number + 1}", "exec")
    if not is_web_app(code):
        exec(compiled, {"__name__": "__main__"})
        return
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compiled, namespace)
    app = namespace["app"]
    assert isinstance(app, web.Application), "a web snippet defines `app`"
    seen = asyncio.run(drive_aiohttp(app))
    assert seen, "the app serves /"
    assert all(status < 400 for _, _, status, _ in seen), seen
    texts = [text for method, _, _, text in seen if method == "GET"]
    if any(path == "/login" for _, path, _, _ in seen):
        assert "ada" in texts[1]  # logged in
        assert "ada" not in texts[-1]  # logged out
