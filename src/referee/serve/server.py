"""Running the app: `serve` in the foreground (the CLI, the demo), `running` in a background thread
(tests, benchmarks), and the rules for loading judges and API keys."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from referee.errors import UserError
from referee.serve.app import create_app

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def read_api_keys(path: str | Path) -> list[str]:
    """One key per line; blank lines and lines starting with # are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such API key file (one key per line)")
    keys = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key) < 16 or not key.isascii() or any(c.isspace() for c in key):
            raise UserError(f"{path}: line {number}: a key must be at least 16 printable ASCII characters without "
                            "spaces (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        keys.append(key)
    if not keys:
        raise UserError(f"{path}: holds no key (one key per line)")
    return keys


def load_judges(folders: list[str | Path]) -> dict:
    """name -> judge, the name being the folder's name; judges load only from safetensors + JSON."""
    from referee.judges import load_judge

    judges = {}
    for folder in folders:
        name = Path(folder).resolve().name
        if name in judges:
            raise UserError(f"{folder}: two judge folders are both named {name!r}; rename one (the name is how "
                            "clients pick a judge)")
        judges[name] = load_judge(folder)
    return judges


def check_exposure(host: str, api_keys: list[str] | None) -> None:
    if not is_loopback(host) and not api_keys:
        raise UserError(f"--host {host} exposes the judges beyond this machine; give --api-key-file with one key "
                        "per line (clients send 'Authorization: Bearer KEY'), or keep the default 127.0.0.1")


def serve(judges: dict, host: str = "127.0.0.1", port: int = 8000, *, api_keys: list[str] | None = None,
          log_level: str = "warning", **options) -> None:
    """Serve `judges` until interrupted (options: those of `create_app`). Any host but loopback
    needs API keys."""
    check_exposure(host, api_keys)
    app = create_app(judges, api_keys=api_keys, **options)
    shown = f"[{host}]" if ":" in host else host
    print(f"referee: serving {len(judges)} judge(s) ({', '.join(sorted(judges))}) at http://{shown}:{port}/  "
          f"(API docs: /docs; Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def running(app, host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 30.0):
    """A real uvicorn server for `app` in a background thread; yields its base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="referee-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
