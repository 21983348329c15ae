"""What the demos need to start: the local server `make demo` started, a free port."""

from __future__ import annotations

import argparse
import logging
import os
import socket


def check_port(port: int) -> None:
    """Exit with one line (and the next port to try) if ``port`` on 127.0.0.1 is taken."""
    try:
        with socket.create_server(("127.0.0.1", port)):
            pass  # free: the server binds it next
    except OSError as exc:
        raise SystemExit(
            f"port {port} on 127.0.0.1 is not free ({os.strerror(exc.errno or 0)}): "
            f"try PORT={port + 1}"
        ) from None


def local_endpoint() -> str | None:
    """The local DynamoDB-compatible server `make demo` started, if any."""
    servers = os.environ.get("CYCLICSESS_TEST_SERVERS", "")
    return next((e.split("=", 1)[1] for e in servers.split(",") if "=" in e), None)


def start(description: str, name: str) -> int:
    """Parse ``--port``, set up logging, check the port is free, say where; return the port."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=8080)
    port: int = parser.parse_args().port
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_port(port)
    print(f"cyclicsess demo ({name}): http://127.0.0.1:{port}/  (Ctrl-C stops it)", flush=True)
    return port
