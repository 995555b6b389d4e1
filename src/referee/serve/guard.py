"""The guard: ASGI middleware that checks every request before any routing or parsing."""

from __future__ import annotations

import asyncio
import hmac

from referee.serve.schemas import error_response

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The page loads only its own files; nothing may frame it (clickjacking) or post its forms elsewhere.
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
# Swagger UI's page starts itself with an inline script and inline styles.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")


def host_name(header: str) -> str:
    """The host of a Host header, without its port: '[::1]:8000' -> '::1', 'Example.com:80' -> 'example.com'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware, outermost. First the Host header: it must name a loopback address or one of
    `hosts`, else 400 — a web page on another site that makes its own name resolve to 127.0.0.1 (DNS
    rebinding) still sends its own name, so it cannot reach a keyless loopback server. Then a `/v1/`
    request needs `Authorization: Bearer KEY` or `X-API-Key: KEY` with one of `api_keys` (when there
    are keys), else 401; every key is compared, each in constant time. Then it reads the whole body
    itself, counting the bytes that actually arrive — a missing or false Content-Length (a chunked
    upload) changes nothing — and answers 413 past `max_body_bytes`, 408 when the body has not arrived
    within `body_timeout_s`. The app then reads the body from memory. Every response gets a
    Content-Security-Policy, X-Content-Type-Options: nosniff and X-Frame-Options: DENY.

    Hand-written rather than Starlette's RequestBodyLimitMiddleware and TrustedHostMiddleware: they
    answer in plain text and run in a fixed order, so a keyless request would get 413 rather than 401."""

    def __init__(self, app, *, api_keys: list[str] | None, max_body_bytes: int, body_timeout_s: float,
                 hosts: list[str] = ()):
        self.app = app
        self.keys = [key.encode() for key in api_keys or []]
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s
        self.hosts = {host_name(h) for h in (*LOOPBACK_HOSTS, *hosts)}

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        match = False
        for key in self.keys:
            match |= hmac.compare_digest(key, given)
        return match

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        security = [(b"content-security-policy", (DOCS_CSP if scope["path"] == "/docs" else CSP).encode()),
                    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *security]}
            await send(message)

        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host and host not in self.hosts:
            return await error_response(
                400, f"the Host header names {host!r}, which this server does not answer to (it answers to "
                     f"{', '.join(sorted(self.hosts))}); if that is this machine's name, start the server with "
                     f"--allow-host {host}")(scope, receive, send_secured)
        if self.keys and scope["path"].startswith("/v1/") and not self._authorized(headers):
            sent = headers.get(b"authorization") or headers.get(b"x-api-key")
            detail = "wrong API key" if sent else "missing API key: send the header 'Authorization: Bearer KEY'"
            return await error_response(401, detail, {"WWW-Authenticate": "Bearer"})(scope, receive, send_secured)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send_secured)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit():
            return await error_response(400, "the Content-Length header is not a number")(scope, receive, send_secured)
        if int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send_secured)
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                return await error_response(408, f"the request body did not arrive within {self.body_timeout_s:g} s")(
                    scope, receive, send_secured)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await self._too_large(scope, receive, send_secured)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secured)

    async def _too_large(self, scope, receive, send):
        await error_response(413, f"the request body is over the limit of {self.max_body_bytes} bytes; "
                                  "send fewer or shorter items per request")(scope, receive, send)
