"""The demo shop's pages, shared by its aiohttp and FastAPI versions.

Each page shows the hash the session is stored under, its version and when it
expires, as the request left them (the handlers commit the session before
rendering), so you can watch the store work.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cyclicsess import Session, SessionRecord, SessionStore
from examples.serve import local_endpoint

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cyclicsess demo</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}
form{{display:inline}} code{{background:#eee;padding:0 .2em}}</style></head>
<body>
<h1>cyclicsess demo <small>({framework})</small></h1>
{body}
<hr>
<p id="store">stored under <code id="hash">{hash}</code>,
version <span id="version">{version}</span>,
expires <span id="expires">{expires}</span></p>
</body></html>"""

LOGIN_FORM = """<p id="greeting">You are not logged in.</p>
<form method="post" action="/login"><input name="name" placeholder="your name" required>
<button id="login">Log in</button></form>"""


def make_store() -> SessionStore:
    """The demo's store: the local server `make demo` started, or real DynamoDB."""
    return SessionStore(
        os.environ.get("CYCLIC_DB", "cyclicsess-demo"),
        endpoint_url=local_endpoint(),
        ttl=timedelta(hours=1),
        secret=os.environ.get("SESSION_SECRET") or None,
        user_key="user",  # sessions are listed and revoked per user
    )


def visit(session: Session) -> None:
    """What a look at the home page does: count the visit of a logged-in user."""
    if "user" in session:
        session["visits"] = session.get("visits", 0) + 1


async def sessions_of(store: SessionStore, session: Mapping[str, Any]) -> list[SessionRecord]:
    """The live sessions of the session's user (none when nobody is logged in)."""
    user = session.get("user")
    return [] if user is None else await store.sessions_of(user)


def your_sessions(records: list[SessionRecord], current: str | None) -> str:
    """The "your sessions" panel: each session's creation and last use, and a way out."""
    if not records:
        return ""
    rows = "".join(
        f"<li>{'this one' if r.storage_key == current else 'another'}: created "
        f"{r.created_at:%Y-%m-%d %H:%M:%S}, last used {r.touched_at:%H:%M:%S} UTC</li>"
        for r in records
    )
    return f"""<h2>Your sessions (<span id="session-count">{len(records)}</span>)</h2>
<ul id="sessions">{rows}</ul>
<form method="post" action="/logout-others"><button id="logout-others">Log out everywhere
else</button></form>"""


def home(session: Mapping[str, Any], panel: str = "") -> str:
    """The home page's body."""
    user = session.get("user")
    if user is None:
        return LOGIN_FORM
    cart = session.get("cart", [])
    items = "".join(f"<li>{html.escape(item)}</li>" for item in cart) or "<li>(empty)</li>"
    return f"""<p id="greeting">Hello, {html.escape(user)}!</p>
<p>Visits this session: <span id="visits">{session["visits"]}</span></p>
<h2>Cart</h2><ul id="cart">{items}</ul>
<form method="post" action="/cart"><input name="item" placeholder="item" required>
<button id="add">Add</button></form>
<form method="post" action="/cart/empty"><button id="empty">Empty cart</button></form>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
{panel}"""


def page(framework: str, store: SessionStore, session: Session, body: str) -> str:
    """A whole page: ``body`` and the session as the store now holds it."""
    sid = session.id
    return PAGE.format(
        framework=framework,
        body=body,
        hash=html.escape(store.storage_key(sid)) if sid else "(nothing stored yet)",
        version=session.version or "-",
        expires=session.expires_at.isoformat() if session.expires_at else "-",
    )


def login(session: Session, name: str) -> None:
    """Log in as ``name`` (the session has already been regenerated)."""
    if name:
        session["user"] = name[:64]


def add_to_cart(session: Session, item: str) -> None:
    """Put ``item`` in the cart of a logged-in user."""
    if item and "user" in session:
        session.setdefault("cart", []).append(item[:64])
