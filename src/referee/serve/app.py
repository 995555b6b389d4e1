"""The HTTP API and the web page: `create_app(judges)` builds a FastAPI app over loaded judges.

Endpoints (every `/v1/...` one needs an API key when the app has keys):

    POST /v1/score     {"conversation": C, "metrics": [..]?, "scale": [lo, hi]?}   -> scores per metric (each on its training scale by default)
    POST /v1/compare   {"a": C, "b": C}  or  {"context": C, "response_a": "..", "response_b": ".."}
                                                                              -> p(A), p(B), p(tie), verdict
    POST /v1/safety    {"conversation": C}   -> p(unsafe) per category and "any", cost, verdict
    POST /v1/reward    {"conversation": C}   -> a centred scalar reward
    GET  /v1/judges    what is loaded: task, version, metrics, categories, validation figures
    GET  /healthz, /readyz, /docs (OpenAPI), /  (the web page)

C is the canonical conversation record, `Conversation.to_dict()`: {"system": ".."?, "turns": [{"role":
"user"|"assistant", "content": ".."}, ...]}; the final assistant turn is the response judged. Each POST
takes one item or a list of items; `?judge=NAME` picks the judge and may be left out when only one judge
of that task is loaded. A single item answers {"judge", "version", ...result}; a list answers {"judge",
"version", "results": [...]}.

Safety: nothing in a request ever becomes a file path; the body is capped on the bytes actually
received (413), then the number of items (422, checked before any item is validated), the length of
every text, the distinct metrics per item and the work of the whole request (items x metrics x
conversations; 422); each request waits at most `timeout_s` (504) and a batch nobody waits for stops,
and a full queue answers 503 with Retry-After. Bodies over 64 KB are parsed off the event loop. Every
mistake a client can make gets a 4xx whose `detail` says what to fix. The guard (guard.py) checks the
Host header and keys and adds security headers before any of this.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from functools import partial
from importlib.resources import files

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline

from referee import __version__
from referee.errors import UserError
from referee.judges.stack import frozen_encoders
from referee.serve.batching import MicroBatcher, Overloaded, TimedOut
from referee.serve.guard import Guard
from referee.serve.schemas import EXAMPLES, MAX_METRICS, ClientError, body_schema, error_response, parse_items
from referee.serve.tasks import ENDPOINTS, ITEMS, RUN, SUMMARIES, describe, per_item, to_examples, warm_up_examples, work

log = logging.getLogger("referee.serve")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
WRITE_EVERY_S = 60  # a frozen encoder's new embeddings go to its disk cache at most this often (and at shutdown)
OFFLOAD_BYTES = 64_000  # bodies larger than this are parsed and validated in a worker thread


# --- the app ---------------------------------------------------------------------------------

def create_app(judges: dict, *, api_keys: list[str] | None = None, max_batch: int = 32, max_wait_ms: float = 0.0,
               max_body_bytes: int = 1_000_000, max_items: int = 64, max_chars: int = 32_000, max_work: int = 1024,
               timeout_s: float = 30.0, max_queue: int = 256, hosts: list[str] = (), cache_mib: float | None = 256) -> FastAPI:
    """A FastAPI app serving `judges` (name -> loaded judge). With `api_keys`, every `/v1/` route
    needs `Authorization: Bearer KEY` (or `X-API-Key: KEY`); `max_batch=1, max_wait_ms=0` turns
    micro-batching off. Requests must name a loopback host or one of `hosts` in their Host header.
    `cache_mib` caps each frozen judge's in-memory embedding cache (least recently used rows go
    first; None: no cap), so that the server's memory stays flat however many texts it sees."""
    if not judges:
        raise UserError("create_app: no judges given; load at least one judge folder")
    for name, judge in judges.items():
        if judge.task not in RUN:
            raise UserError(f"create_app: judge {name!r} has task {judge.task!r}; expected one of {sorted(RUN)}")
    versions = {name: judge.fingerprint() for name, judge in judges.items()}
    batchers = {name: MicroBatcher(lambda items, j=judge: RUN[j.task](j, items), name=name, max_batch=max_batch,
                                   max_wait_ms=max_wait_ms, max_queue=max_queue, timeout_s=timeout_s)
                for name, judge in judges.items()}
    static = {route: (files("referee.serve").joinpath("static", fname).read_bytes(), kind)
              for route, (fname, kind) in STATIC.items()}

    @asynccontextmanager
    async def lifespan(app):
        for name, judge in judges.items():
            for encoder in frozen_encoders(judge):
                encoder.write_every_s = WRITE_EVERY_S
            # Frozen and fine-tuned encoders load their model on first use: pay that before /readyz
            # says ready, not on a client's first request.
            await asyncio.to_thread(RUN[judge.task], judge, warm_up_examples(judge))
            if cache_mib is not None:
                for encoder in frozen_encoders(judge):
                    # Counts the embeddings' bytes; each row's key and index entry add about 150 more.
                    encoder.max_cached_rows = int(cache_mib * 2**20) // (4 * encoder.dim)
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()
        for judge in judges.values():
            for encoder in frozen_encoders(judge):
                encoder.flush()  # what the last minute encoded, for the next start

    # FastAPIOffline serves Swagger UI's assets itself: FastAPI's /docs loads them from a CDN and is blank offline.
    app = FastAPIOffline(title="referee", version=__version__, lifespan=lifespan, redoc_url=None,
                         description=__doc__.split("\n\n", 1)[0] + " Send one item or a list; `?judge=NAME` picks the "
                         "judge (optional when one judge of the task is loaded). With API keys: `Authorization: Bearer KEY`.")
    app.state.judges, app.state.batchers, app.state.versions = judges, batchers, versions
    app.add_middleware(Guard, api_keys=api_keys, max_body_bytes=max_body_bytes, body_timeout_s=timeout_s, hosts=hosts)

    @app.exception_handler(ClientError)
    async def _client_error(request, err: ClientError):
        return error_response(err.status, err.detail, err.headers, **err.extra)

    @app.exception_handler(UserError)
    async def _user_error(request, err: UserError):
        return error_response(422, str(err))

    @app.exception_handler(Exception)
    async def _unexpected(request, err: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(err).__name__}); the server log has the details")

    def pick(task: str, name: str | None) -> str:
        of_task = sorted(n for n, j in judges.items() if j.task == task)
        if name is not None:
            if name not in judges:
                raise ClientError(404, f"no judge named {name!r} is loaded; loaded {task} judges: {of_task or 'none'} "
                                       "(GET /v1/judges lists them all)")
            if judges[name].task != task:
                raise ClientError(422, f"judge {name!r} is a {judges[name].task} judge; send it to "
                                       f"{ENDPOINTS[judges[name].task]}, or pick one of the {task} judges: {of_task or 'none'}")
            return name
        if not of_task:
            raise ClientError(404, f"no {task} judge is loaded (loaded: {sorted(judges)}); start the server with one")
        if len(of_task) > 1:
            raise ClientError(422, f"{len(of_task)} {task} judges are loaded ({', '.join(of_task)}); name one with ?judge=NAME")
        return of_task[0]

    async def read_items(task: str, request: Request) -> tuple[list, bool]:
        """The request's validated items, and whether the body was a list."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ClientError(415, "send the body as JSON with the header 'Content-Type: application/json'")
        raw = await request.body()
        parse = partial(parse_items, raw, ITEMS[task], max_items)
        # Parsing and validating a big body is milliseconds of CPU: in a thread, /healthz and other
        # requests keep their answers coming meanwhile.
        items, listed = await asyncio.to_thread(parse) if len(raw) > OFFLOAD_BYTES else parse()
        check_chars(items)
        return items, listed

    def check_chars(items: list) -> None:
        for i, item in enumerate(items):
            for where, text in item.texts():
                if len(text) > max_chars:
                    prefix = f"body[{i}]." if len(items) > 1 else "body."
                    raise ClientError(422, f"{prefix}{where} has {len(text)} characters; the limit is {max_chars} "
                                           "(judges read at most a few thousand): shorten it")

    async def judge_request(task: str, request: Request, name: str | None):
        name = pick(task, name)
        items, listed = await read_items(task, request)
        examples, counts = to_examples(task, judges[name], items)
        if work(task, examples) > max_work:
            raise ClientError(422, f"this request asks the judge to read {work(task, examples)} conversations (items x "
                                   f"metrics, two per compared pair); the limit is {max_work}: send fewer items or metrics")
        try:
            results = await batchers[name].submit(examples)
        except Overloaded as err:
            raise ClientError(503, str(err), {"Retry-After": str(err.retry_after)}) from None
        except TimedOut as err:
            raise ClientError(504, str(err)) from None
        answers = per_item(task, examples, counts, results)
        head = {"judge": name, "version": versions[name]}
        return {**head, "results": answers} if listed else {**head, **answers[0]}

    judge_query = Query(None, description="the judge's name; optional when one judge of this task is loaded")
    responses = {401: {"description": "missing or wrong API key"}, 404: {"description": "no such judge"},
                 413: {"description": "body too large"}, 422: {"description": "invalid request; `detail` says what to fix"},
                 503: {"description": "queue full; retry after Retry-After seconds"}, 504: {"description": "timed out"}}

    definitions = {}  # the request models, for /openapi.json's components

    def add_route(task: str):
        schema = body_schema(ITEMS[task], definitions)
        examples = {"one item": {"value": EXAMPLES[task]}, "a list": {"value": [EXAMPLES[task]]}}
        body = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema, "examples": examples}}}}

        # The body is read by hand (read_items) so that its size is checked before its items are
        # validated; openapi_extra documents it.
        async def endpoint(request: Request, judge: str | None = judge_query):
            return await judge_request(task, request, judge)

        app.post(ENDPOINTS[task], summary=SUMMARIES[task], responses=responses, openapi_extra=body,
                 operation_id=task)(endpoint)

    for task in ENDPOINTS:
        add_route(task)

    def openapi() -> dict:
        if app.openapi_schema is None:
            FastAPI.openapi(app).setdefault("components", {}).setdefault("schemas", {}).update(definitions)
        return app.openapi_schema

    app.openapi = openapi

    @app.get("/v1/judges", summary="The loaded judges")
    async def list_judges():
        return {"judges": [describe(name, judge, versions[name]) | {"calls": batchers[name].calls}
                           for name, judge in judges.items()],
                "limits": {"max_items": max_items, "max_chars": max_chars, "max_body_bytes": max_body_bytes,
                           "max_work": max_work, "max_metrics": MAX_METRICS, "max_batch": max_batch,
                           "max_wait_ms": max_wait_ms, "timeout_s": timeout_s, "max_queue": max_queue,
                           "cache_mib": cache_mib}}

    @app.get("/healthz", summary="The process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Every judge's batcher is running")
    async def readyz():
        down = [name for name, b in batchers.items() if not b.running]
        if down:
            return error_response(503, f"not ready: judges {down} are not running", {"Retry-After": "1"})
        return {"status": "ready", "judges": sorted(judges)}

    for route, (content, kind) in static.items():
        app.get(route, include_in_schema=False)(lambda content=content, kind=kind: Response(content, media_type=kind))

    return app


