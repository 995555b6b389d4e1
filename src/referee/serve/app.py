"""The HTTP API and the web page: `create_app(judges)` builds a FastAPI app over loaded judges.

Endpoints (every `/v1/...` one needs an API key when the app has keys):

    POST /v1/score     {"conversation": C, "metrics": [..]?, "scale": [lo, hi]?}   -> scores per metric
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
received (413), the number of items (422) and the length of every text (422); each request waits at
most `timeout_s` (504), and a full queue answers 503 with Retry-After. Every mistake a client can make
gets a 4xx whose `detail` says what to fix.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from contextlib import asynccontextmanager
from importlib.resources import files

import numpy as np
from fastapi import Body, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from referee import __version__
from referee.errors import UserError
from referee.serve.batching import MicroBatcher, Overloaded, TimedOut
from referee.serve.guard import Guard
from referee.serve.schemas import (EXAMPLES, ClientError, ConversationBody, PairBody, ScoreBody, error_response,
                                   validation_detail)
from referee.serve.tasks import ENDPOINTS, RUN, describe, per_item, to_examples, warm_up_examples

log = logging.getLogger("referee.serve")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


def judge_version(judge) -> str:
    """A short digest of the judge's learned state: two servers answer alike iff it matches."""
    state, tensors = judge._state()
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensors[name]).tobytes())
    return digest.hexdigest()[:12]


# --- the app ---------------------------------------------------------------------------------

def create_app(judges: dict, *, api_keys: list[str] | None = None, max_batch: int = 32, max_wait_ms: float = 5.0,
               max_body_bytes: int = 1_000_000, max_items: int = 64, max_chars: int = 32_000,
               timeout_s: float = 30.0, max_queue: int = 256) -> FastAPI:
    """A FastAPI app serving `judges` (name -> loaded judge). With `api_keys`, every `/v1/` route
    needs `Authorization: Bearer KEY` (or `X-API-Key: KEY`); `max_batch=1, max_wait_ms=0` turns
    micro-batching off."""
    if not judges:
        raise UserError("create_app: no judges given; load at least one judge folder")
    for name, judge in judges.items():
        if judge.task not in RUN:
            raise UserError(f"create_app: judge {name!r} has task {judge.task!r}; expected one of {sorted(RUN)}")
    versions = {name: judge_version(judge) for name, judge in judges.items()}
    batchers = {name: MicroBatcher(lambda items, j=judge: RUN[j.task](j, items), name=name, max_batch=max_batch,
                                   max_wait_ms=max_wait_ms, max_queue=max_queue, timeout_s=timeout_s)
                for name, judge in judges.items()}
    static = {route: (files("referee.serve").joinpath("static", fname).read_bytes(), kind)
              for route, (fname, kind) in STATIC.items()}

    @asynccontextmanager
    async def lifespan(app):
        for name, judge in judges.items():
            # Frozen and fine-tuned encoders load their model on first use: pay that before /readyz
            # says ready, not on a client's first request.
            await asyncio.to_thread(RUN[judge.task], judge, warm_up_examples(judge))
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(title="referee", version=__version__, lifespan=lifespan,
                  description=__doc__.split("\n\n", 1)[0] + " Send one item or a list; `?judge=NAME` picks the "
                  "judge (optional when one judge of the task is loaded). With API keys: `Authorization: Bearer KEY`.")
    app.state.judges, app.state.batchers, app.state.versions = judges, batchers, versions
    app.add_middleware(Guard, api_keys=api_keys, max_body_bytes=max_body_bytes, body_timeout_s=timeout_s)

    @app.exception_handler(ClientError)
    async def _clienterror_response(request, err: ClientError):
        return error_response(err.status, err.detail, err.headers)

    @app.exception_handler(UserError)
    async def _usererror_response(request, err: UserError):
        return error_response(422, str(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, err: RequestValidationError):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error_response(415, "send the body as JSON with the header 'Content-Type: application/json'")
        problems = validation_detail(err.errors(), err.body)
        status = 400 if problems[0]["problem"].startswith("not valid JSON") else 422
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        return error_response(status, f"invalid request: {summary}", problems=problems)

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

    def check_size(items: list) -> None:
        if not items:
            raise ClientError(422, "the list of items is empty; send one item or a non-empty list")
        if len(items) > max_items:
            raise ClientError(422, f"{len(items)} items in one request; the limit is {max_items}: split the list")
        for i, item in enumerate(items):
            for where, text in item.texts():
                if len(text) > max_chars:
                    prefix = f"body[{i}]." if len(items) > 1 else "body."
                    raise ClientError(422, f"{prefix}{where} has {len(text)} characters; the limit is {max_chars} "
                                           "(judges read at most a few thousand): shorten it")

    async def judge_request(task: str, body, name: str | None):
        name = pick(task, name)
        items = body if isinstance(body, list) else [body]
        check_size(items)
        examples, counts = to_examples(task, judges[name], items)
        try:
            results = await batchers[name].submit(examples)
        except Overloaded as err:
            raise ClientError(503, str(err), {"Retry-After": str(err.retry_after)}) from None
        except TimedOut as err:
            raise ClientError(504, str(err)) from None
        answers = per_item(task, examples, counts, results)
        head = {"judge": name, "version": versions[name]}
        return {**head, **answers[0]} if not isinstance(body, list) else {**head, "results": answers}

    judge_query = Query(None, description="the judge's name; optional when one judge of this task is loaded")
    responses = {401: {"description": "missing or wrong API key"}, 404: {"description": "no such judge"},
                 413: {"description": "body too large"}, 422: {"description": "invalid request; `detail` says what to fix"},
                 503: {"description": "queue full; retry after Retry-After seconds"}, 504: {"description": "timed out"}}

    def examples(task: str) -> dict:
        return {"one item": {"value": EXAMPLES[task]}, "a list": {"value": [EXAMPLES[task]]}}

    @app.post("/v1/score", summary="Score responses on one or more metrics", responses=responses)
    async def score(body: ScoreBody = Body(openapi_examples=examples("score")), judge: str | None = judge_query):
        return await judge_request("score", body, judge)

    @app.post("/v1/compare", summary="Compare two responses: p(A), p(B), p(tie)", responses=responses)
    async def compare(body: PairBody = Body(openapi_examples=examples("pair")), judge: str | None = judge_query):
        return await judge_request("pair", body, judge)

    @app.post("/v1/safety", summary="Is a response (or a request) unsafe, per category", responses=responses)
    async def safety(body: ConversationBody = Body(openapi_examples=examples("safety")), judge: str | None = judge_query):
        return await judge_request("safety", body, judge)

    @app.post("/v1/reward", summary="Bradley-Terry reward of responses", responses=responses)
    async def reward(body: ConversationBody = Body(openapi_examples=examples("reward")), judge: str | None = judge_query):
        return await judge_request("reward", body, judge)

    @app.get("/v1/judges", summary="The loaded judges")
    async def list_judges():
        return {"judges": [describe(name, judge, versions[name]) | {"calls": batchers[name].calls}
                           for name, judge in judges.items()],
                "limits": {"max_items": max_items, "max_chars": max_chars, "max_body_bytes": max_body_bytes,
                           "max_batch": max_batch, "max_wait_ms": max_wait_ms, "timeout_s": timeout_s,
                           "max_queue": max_queue}}

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


