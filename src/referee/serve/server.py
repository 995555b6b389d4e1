"""Running the app: `serve` in the foreground (the CLI, the demo), `running` in a background thread
(tests, benchmarks), and the rules for loading judges and API keys."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from referee.errors import UserError
from referee.serve.app import create_app
from referee.serve.memory import limit_arenas

LOOPBACK_NAMES = ("localhost",)
HEADER_TIMEOUT_S = 10.0  # a connection must send a request's headers within this, else it is closed
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default)


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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); an API key file holds one key per line") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key) < 16 or not all("!" <= c <= "~" for c in key):  # printable ASCII: no spaces, no control characters
            raise UserError(f"{path}: line {number}: a key must be at least 16 printable ASCII characters without "
                            "spaces (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        keys.append(key)
    if not keys:
        raise UserError(f"{path}: holds no key (one key per line)")
    return keys


def load_judges(folders: list[str | Path], trust_encoder: bool = False) -> dict:
    """name -> judge, the name being the folder's name; judges load only from safetensors + JSON,
    each folder checked whole, and a frozen encoder must be one referee ships unless `trust_encoder`."""
    from referee.judges import load_judge

    limit_arenas()  # before torch's and ONNX Runtime's threads start (see `referee.serve.memory`)
    judges = {}
    for folder in folders:
        name = Path(folder).resolve().name
        if name in judges:
            raise UserError(f"{folder}: two judge folders are both named {name!r}; rename one (the name is how "
                            "clients pick a judge)")
        judges[name] = load_judge(folder, trust_encoder=trust_encoder)
    return judges


def check_exposure(host: str, api_keys: list[str] | None) -> None:
    if not is_loopback(host) and not api_keys:
        raise UserError(f"--host {host} exposes the judges beyond this machine; give --api-key-file with one key "
                        "per line (clients send 'Authorization: Bearer KEY'), or keep the default 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (0: a free port), or one line saying why not."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: expected a port number from 0 to 65535 (0 picks a free one)")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on connections of
        # a socket that says TCP. With 0, a response's body waited for the client's delayed ACK of its
        # headers: 44 ms added to every request, /healthz included (bench/serve_load.py).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as err:
        raise UserError(f"--host {host}: cannot listen there ({err.strerror or err})") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting for TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror or err} (is another server using the port? "
                        "pick another with --port)") from None
    sock.listen(2048)  # uvicorn's backlog: clients that connect while the judges load wait, not fail
    return sock


def _protocol(header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for a request's headers. uvicorn closes idle keep-alive
    connections, but a client that connects and sends nothing, or half a request line, would hold
    its connection (and a file descriptor) forever."""

    class HeaderDeadline(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self):
            super().on_response_complete()
            self._arm()  # the next request on this connection has the same deadline

        def _arm(self):
            self.loop.call_later(header_timeout_s, self._expire, self.cycle)

        def _expire(self, cycle):
            # No new request since the deadline was set (uvicorn makes a new cycle per request), and none running.
            if self.cycle is cycle and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def server_for(app, host: str, port: int, *, log_level: str = "warning", header_timeout_s: float = HEADER_TIMEOUT_S,
               keep_alive_s: float = KEEP_ALIVE_S) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                         http=_protocol(header_timeout_s), timeout_keep_alive=keep_alive_s))


def _not_cancelled(record: logging.LogRecord) -> bool:
    """Ctrl+C during start-up cancels the app's lifespan task, and uvicorn logs that cancellation as an
    error with a traceback; the person pressed Ctrl+C, so "referee: interrupted" is all they need."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def serve(judges: dict, host: str = "127.0.0.1", port: int = 8000, *, sock: socket.socket | None = None,
          api_keys: list[str] | None = None, allow_hosts: list[str] = (), log_level: str = "warning", **options) -> None:
    """Serve `judges` until interrupted (options: those of `create_app`). Any host but loopback
    needs API keys. The port is bound (or `sock`, from `bind`, is used) before anything is announced."""
    check_exposure(host, api_keys)
    app = create_app(judges, api_keys=api_keys, hosts=[host, *allow_hosts], **options)
    sock = sock or bind(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"referee: serving {len(judges)} judge(s) ({', '.join(sorted(judges))}) at http://{shown}:{port}/  "
          f"(API docs: /docs; Ctrl+C stops)", flush=True)
    interrupted = False
    with sock, warnings.catch_warnings():
        # Ctrl+C between uvicorn making its coroutine and the loop starting it leaves the coroutine
        # never awaited, and Python would print a RuntimeWarning beside "interrupted".
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        try:
            server = server_for(app, host, port, log_level=log_level)  # configures uvicorn's loggers
            logging.getLogger("uvicorn.error").addFilter(_not_cancelled)
            server.run(sockets=[sock])
            # Only a signal stops this server, and newer uvicorn releases return normally after one
            # instead of raising it again: either way the person pressed Ctrl+C (or sent SIGTERM).
            interrupted = True
        except KeyboardInterrupt:
            interrupted = True
        gc.collect()  # the warning comes when the coroutine is collected: here, inside the filter
    if interrupted:
        raise KeyboardInterrupt


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0, **timeouts):
    """A real uvicorn server for `app` in a background thread; yields its base URL. `timeouts`:
    header_timeout_s, keep_alive_s (see `server_for`)."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    server = server_for(app, host, port, **timeouts)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="referee-serve", daemon=True)
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
        sock.close()
