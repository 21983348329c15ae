"""Start and stop the local DynamoDB-compatible servers the tests and the demo use.

    python tests/servers.py up [--only dynalite|moto] [--data-dir DIR]
    python tests/servers.py down
    python tests/servers.py run -- COMMAND...   (up, run, always down; exit with COMMAND's code)

Each server binds to 127.0.0.1 on a free port, is waited for until ``GET /``
answers, and leaves a pid file and a log in ``.run/``. ``up`` writes
``.run/servers.env`` with ``CYCLICSESS_TEST_SERVERS=name=url,...``; ``run``
passes the same variable to COMMAND and stops only the servers it started.
``down`` stops every server ``up`` left running, by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, by the standard library alone (make clean)
from tests.harness import SERVERS_VARIABLE, free_port  # noqa: E402

RUN = Path(os.environ.get("CYCLICSESS_RUN_DIR", ROOT / ".run"))
DYNALITE = ROOT / ".tools" / "node_modules" / "dynalite" / "cli.js"
MOTO = Path(sys.executable).parent / "moto_server"
READY_TIMEOUT_S = 60.0


def command(name: str, port: int, data_dir: str | None) -> list[str]:
    if name == "dynalite":
        cmd = ["node", str(DYNALITE), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
        if data_dir:
            cmd += ["--path", data_dir]
        return cmd
    if name == "moto":
        return [str(MOTO), "-H", "127.0.0.1", "-p", str(port)]
    raise SystemExit(f"unknown server {name!r}")


def wait_ready(name: str, url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{name} exited with {proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not answer at {url} within {READY_TIMEOUT_S:.0f}s")


def up(names: list[str], data_dir: str | None) -> tuple[dict[str, str], list[Path]]:
    """Start the servers; return their URLs and pid files."""
    RUN.mkdir(exist_ok=True)
    urls: dict[str, str] = {}
    pid_files: list[Path] = []
    try:
        for name in names:
            port = free_port()
            log_path = RUN / f"{name}-{port}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    command(name, port, data_dir),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            pid_file = RUN / f"{name}-{port}.pid"
            pid_file.write_text(str(proc.pid))
            pid_files.append(pid_file)
            url = f"http://127.0.0.1:{port}"
            wait_ready(name, url, proc, log_path)
            urls[name] = url
            print(f"{name} ready at {url} (pid {proc.pid}, log {log_path})", file=sys.stderr)
    except BaseException:
        stop(pid_files)
        raise
    return urls, pid_files


def reap(pid: int) -> None:
    """Collect an exited child of this process, so it stops existing as a zombie."""
    # A server started by another invocation is not ours to collect.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid_files: list[Path]) -> None:
    """Stop the servers behind these pid files, by pid (TERM, then KILL after 5 s)."""
    for pid_file in pid_files:
        try:
            pid = int(pid_file.read_text())
        except FileNotFoundError:
            continue  # already stopped by `down`
        try:
            os.killpg(pid, signal.SIGTERM)  # the server's own process group, started above
            for _ in range(50):
                reap(pid)
                os.kill(pid, 0)
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink()
        print(f"stopped {pid_file.stem} (pid {pid})", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "run"])
    parser.add_argument("--only", choices=["dynalite", "moto"], action="append")
    parser.add_argument("--data-dir", help="keep dynalite's data on disk here")
    argv = sys.argv[1:]
    cmd = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(cmd) - (1 if cmd else 0)])
    if args.action == "down":
        stop(sorted(RUN.glob("*.pid")))
        (RUN / "servers.env").unlink(missing_ok=True)
        return 0
    if args.action == "run" and not cmd:
        parser.error("run needs a command after --")
    urls, pid_files = up(args.only or ["dynalite", "moto"], args.data_dir)
    servers = ",".join(f"{name}={url}" for name, url in urls.items())
    if args.action == "up":
        (RUN / "servers.env").write_text(f"{SERVERS_VARIABLE}={servers}\n")
        return 0

    # The command runs in a session of its own, so a signal reaches it
    # once, from here. Ctrl-C (SIGINT) stops it; a command that then ends
    # cleanly makes this exit 0 (a demo stopped by hand is no failure).
    # SIGTERM (from `timeout`, say) is passed on and reported as 143. Signals
    # during the clean-up are ignored: it must not be cut short.
    child = subprocess.Popen(
        cmd, env=dict(os.environ, **{SERVERS_VARIABLE: servers}), start_new_session=True
    )
    received: list[int] = []

    def pass_on(signum: int, _: object) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(pid_files)
    if signal.SIGTERM in received:
        return 128 + signal.SIGTERM
    if received and code in (0, -signal.SIGINT, 128 + signal.SIGINT):
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
