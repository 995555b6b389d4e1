"""The guard: ASGI middleware that checks every request before any routing or parsing."""

from __future__ import annotations

import asyncio
import hmac

from referee.serve.schemas import error_response


class Guard:
    """ASGI middleware, outermost. A `/v1/` request needs `Authorization: Bearer KEY` or `X-API-Key:
    KEY` with one of `api_keys` (when there are keys), else 401; every key is compared, each in
    constant time. Then it reads the whole body itself, counting the bytes that actually arrive — a
    missing or false Content-Length (a chunked upload) changes nothing — and answers 413 past
    `max_body_bytes`, 408 when the body has not arrived within `body_timeout_s`. The app then reads
    the body from memory.

    Hand-written rather than Starlette's RequestBodyLimitMiddleware: that one answers in plain text
    and runs inside the app, after routing, so a keyless request would get 413 rather than 401."""

    def __init__(self, app, *, api_keys: list[str] | None, max_body_bytes: int, body_timeout_s: float):
        self.app = app
        self.keys = [key.encode() for key in api_keys or []]
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s

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
        headers = dict(scope["headers"])
        if self.keys and scope["path"].startswith("/v1/") and not self._authorized(headers):
            sent = headers.get(b"authorization") or headers.get(b"x-api-key")
            detail = "wrong API key" if sent else "missing API key: send the header 'Authorization: Bearer KEY'"
            return await error_response(401, detail, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit():
            return await error_response(400, "the Content-Length header is not a number")(scope, receive, send)
        if int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                return await error_response(408, f"the request body did not arrive within {self.body_timeout_s:g} s")(
                    scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await self._too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        await error_response(413, f"the request body is over the limit of {self.max_body_bytes} bytes; "
                          "send fewer or shorter items per request")(scope, receive, send)
