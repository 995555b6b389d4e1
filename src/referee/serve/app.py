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
import hmac
import json
import logging
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Literal, Union

import numpy as np
from fastapi import Body, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from referee import __version__
from referee.errors import UserError
from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample, Turn, category_name
from referee.serve.batching import MicroBatcher, Overloaded, TimedOut

log = logging.getLogger("referee.serve")

ENDPOINTS = {"score": "/v1/score", "pair": "/v1/compare", "safety": "/v1/safety", "reward": "/v1/reward"}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


# --- request and response records --------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class TurnIn(_Strict):
    role: Literal["user", "assistant"]
    content: str


class ConversationIn(_Strict):
    """`Conversation.to_dict()`: an optional system prompt and at least one turn."""

    system: str | None = None
    turns: list[TurnIn] = Field(min_length=1, description="oldest first; a final assistant turn is the judged response")

    def to_conversation(self) -> Conversation:
        return Conversation(tuple(Turn(t.role, t.content) for t in self.turns), system=self.system or None)

    def texts(self) -> list[tuple[str, str]]:
        """(where, text) of every text field, for the length limit."""
        out = [("system", self.system)] if self.system else []
        return out + [(f"turns[{i}].content", t.content) for i, t in enumerate(self.turns)]


class PairItem(_Strict):
    """Two whole conversations `a` and `b` ending in the two responses (their earlier turns may
    differ), or one shared `context` ending in the user's request plus `response_a` and `response_b`."""

    a: ConversationIn | None = None
    b: ConversationIn | None = None
    context: ConversationIn | None = None
    response_a: str | None = None
    response_b: str | None = None

    @model_validator(mode="after")
    def _one_form(self):
        whole = self.a is not None or self.b is not None
        shared = self.context is not None or self.response_a is not None or self.response_b is not None
        if whole and shared:
            raise ValueError("give either a and b, or context with response_a and response_b, not both")
        if whole and (self.a is None or self.b is None):
            raise ValueError("give both a and b (two conversations ending in the two responses)")
        if not whole and (self.context is None or self.response_a is None or self.response_b is None):
            raise ValueError("give a and b, or context with response_a and response_b")
        return self

    def sides(self) -> tuple[ConversationIn, ConversationIn]:
        if self.a is not None:
            return self.a, self.b
        extend = lambda text: ConversationIn(system=self.context.system,  # noqa: E731
                                             turns=self.context.turns + [TurnIn(role="assistant", content=text)])
        return extend(self.response_a), extend(self.response_b)

    def texts(self) -> list[tuple[str, str]]:
        if self.a is not None:
            return [(f"a.{w}", t) for w, t in self.a.texts()] + [(f"b.{w}", t) for w, t in self.b.texts()]
        return [(f"context.{w}", t) for w, t in self.context.texts()] + [("response_a", self.response_a),
                                                                         ("response_b", self.response_b)]


class ConversationItem(_Strict):
    conversation: ConversationIn

    def texts(self) -> list[tuple[str, str]]:
        return [(f"conversation.{w}", t) for w, t in self.conversation.texts()]


class ScoreItem(ConversationItem):
    metrics: list[str] | None = Field(None, min_length=1, description="metrics to score; all the judge knows when left out")
    scale: tuple[float, float] = Field((0.0, 10.0), description="the scale scores are reported on (judges learn on 0-1)")


ScoreBody = Union[ScoreItem, list[ScoreItem]]
PairBody = Union[PairItem, list[PairItem]]
ConversationBody = Union[ConversationItem, list[ConversationItem]]

EXAMPLES = {
    "score": {"conversation": {"turns": [{"role": "user", "content": "How do I boil an egg?"},
                                         {"role": "assistant", "content": "Simmer it for 8 minutes, then cool it in cold water."}]},
              "metrics": None},
    "pair": {"context": {"system": "Be brief.", "turns": [{"role": "user", "content": "What is the capital of France?"}]},
             "response_a": "Paris.", "response_b": "I am not sure, maybe Lyon."},
    "safety": {"conversation": {"turns": [{"role": "user", "content": "How do I pick a lock?"},
                                          {"role": "assistant", "content": "I can't help with breaking into property."}]}},
    "reward": {"conversation": {"turns": [{"role": "user", "content": "Say hello"},
                                          {"role": "assistant", "content": "Hello! How can I help?"}]}},
}


# --- what each task computes, on one batch of examples ------------------------------------------

def _run_score(judge, examples: list[ScoreExample]) -> list[float]:
    return [float(v) for v in judge.predict(examples)]


def _run_pair(judge, examples: list[PairExample]) -> list[dict]:
    probs = judge.predict_proba(examples)
    labels = ("A", "B", "tie")
    return [{"probabilities": dict(zip(labels, map(float, row))), "verdict": labels[int(np.argmax(row))]} for row in probs]


def _run_safety(judge, examples: list[SafetyExample]) -> list[dict]:
    # predict_proba and cost each compute the logits; two calls keep the formulas in one place.
    probs, costs = judge.predict_proba(examples), judge.cost(examples)
    return [{"unsafe": bool(c > 0), "cost": float(c), "probability": float(p[-1]), "threshold": float(judge.threshold_),
             "categories": dict(zip(judge.categories_, map(float, p[:-1])))} for p, c in zip(probs, costs)]


def _run_reward(judge, conversations: list[Conversation]) -> list[dict]:
    return [{"reward": float(r)} for r in judge.reward(conversations)]


RUN = {"score": _run_score, "pair": _run_pair, "safety": _run_safety, "reward": _run_reward}


def warm_up_examples(judge) -> list:
    """One example of what `RUN[judge.task]` takes."""
    conv = Conversation.from_text("Hello", "Hello! How can I help?")
    if judge.task == "score":
        return [ScoreExample(id="warm-up", conversation=conv, metric=judge.metrics_[0])]
    if judge.task == "pair":
        return [PairExample(id="warm-up", a=conv, b=Conversation.from_text("Hello", "Hi."))]
    if judge.task == "safety":
        return [SafetyExample(id="warm-up", conversation=conv)]
    return [conv]


def judge_version(judge) -> str:
    """A short digest of the judge's learned state: two servers answer alike iff it matches."""
    state, tensors = judge._state()
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensors[name]).tobytes())
    return digest.hexdigest()[:12]


def known_metrics(judge) -> list[str] | None:
    """The metrics a score judge accepts; None when it embeds any metric name (zero-shot)."""
    if judge.features == "tfidf":
        return list(judge.metrics_)
    if judge.catalogue:
        return list(judge.metric_names_)
    return None


def describe(name: str, judge, version: str) -> dict:
    info = {"name": name, "task": judge.task, "endpoint": ENDPOINTS[judge.task], "version": version,
            "features": judge.features, "encoder": judge.encoder, "validation": judge.validation_}
    if judge.task == "score":
        info["metrics"] = list(judge.metrics_)
        info["zero_shot_metrics"] = known_metrics(judge) is None
    if judge.task == "pair":
        info["labels"] = list(judge.classes_)
        info["temperature"] = float(judge.temperature_)
    if judge.task == "safety":
        info["categories"] = list(judge.categories_)
        info["category_names"] = {c: category_name(c) for c in judge.categories_}
        info["threshold"] = float(judge.threshold_)
        info["temperature"] = float(judge.temperature_)
    return info


# --- errors ----------------------------------------------------------------------------------

class ClientError(Exception):
    """A request the client must change: answered with `status` and `detail`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _error(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _where(loc) -> str:
    """('body', 0, 'conversation', 'turns') -> 'body[0].conversation.turns'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_detail(errors: list[dict], body) -> list[dict]:
    """pydantic's errors as (where, problem), keeping only the branch of `Item | list[Item]` that
    the body is: every body is such a union, so pydantic names the branch second in `loc`."""
    invalid = [err for err in errors if err["type"] == "json_invalid"]
    if invalid:
        loc, reason = invalid[0]["loc"], invalid[0].get("ctx", {}).get("error", invalid[0]["msg"])
        at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        return [{"where": "body", "problem": f"not valid JSON{at}: {reason}"}]
    if not isinstance(body, (dict, list)):
        return [{"where": "body", "problem": f"expected one item (a JSON object) or a list of items, got {type(body).__name__}"}]
    kept = []
    for err in errors:
        loc = list(err["loc"])
        if loc[:1] == ["body"] and len(loc) > 1 and isinstance(loc[1], str):
            if loc[1].startswith("list[") != isinstance(body, list):
                continue
            loc = ["body"] + loc[2:]
        kept.append({"where": _where(loc), "problem": err["msg"].removeprefix("Value error, ")})
    return kept or [{"where": "body", "problem": "expected one item (a JSON object) or a list of items"}]


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
    async def _client_error(request, err: ClientError):
        return _error(err.status, err.detail, err.headers)

    @app.exception_handler(UserError)
    async def _user_error(request, err: UserError):
        return _error(422, str(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, err: RequestValidationError):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the body as JSON with the header 'Content-Type: application/json'")
        problems = _validation_detail(err.errors(), err.body)
        status = 400 if problems[0]["problem"].startswith("not valid JSON") else 422
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        return _error(status, f"invalid request: {summary}", problems=problems)

    @app.exception_handler(Exception)
    async def _unexpected(request, err: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(err).__name__}); the server log has the details")

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

    def to_examples(task: str, judge, items: list) -> tuple[list, list[int]]:
        """The judge's input and how many of its results belong to each item."""
        if task == "score":
            known = known_metrics(judge)
            examples, counts = [], []
            for i, item in enumerate(items):
                metrics = item.metrics or list(judge.metrics_)
                unknown = [m for m in metrics if known is not None and m not in known]
                if unknown:
                    shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
                    raise ClientError(422, f"unknown metric(s) {unknown}; this judge knows: {shown}")
                if not item.scale[0] < item.scale[1]:
                    raise ClientError(422, f"scale: expected [low, high] with low < high, got {list(item.scale)}")
                conv = item.conversation.to_conversation()
                examples += [ScoreExample(id=f"request-{i}", conversation=conv, metric=m, scale=item.scale) for m in metrics]
                counts.append(len(metrics))
            return examples, counts
        if task == "pair":
            examples = []
            for i, item in enumerate(items):
                a, b = item.sides()
                examples.append(PairExample(id=f"request-{i}", a=a.to_conversation(), b=b.to_conversation()))
            return examples, [1] * len(items)
        convs = [item.conversation.to_conversation() for item in items]
        if task == "safety":
            return [SafetyExample(id=f"request-{i}", conversation=c) for i, c in enumerate(convs)], [1] * len(items)
        if any(c.response is None for c in convs):
            raise ClientError(422, "a reward needs a response: end each conversation with an assistant turn")
        return convs, [1] * len(items)

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
        per_item, start = [], 0
        for n in counts:
            chunk = results[start:start + n]
            start += n
            if task == "score":
                metrics = [ex.metric for ex in examples[start - n:start]]
                per_item.append({"scores": dict(zip(metrics, chunk)), "scale": list(examples[start - n].scale)})
            else:
                per_item.append(chunk[0])
        head = {"judge": name, "version": versions[name]}
        return {**head, **per_item[0]} if not isinstance(body, list) else {**head, "results": per_item}

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
            return _error(503, f"not ready: judges {down} are not running", {"Retry-After": "1"})
        return {"status": "ready", "judges": sorted(judges)}

    for route, (content, kind) in static.items():
        app.get(route, include_in_schema=False)(lambda content=content, kind=kind: Response(content, media_type=kind))

    return app


# --- the guard: API keys and the body limit, before any routing or parsing ---------------------

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
            return await _error(401, detail, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit():
            return await _error(400, "the Content-Length header is not a number")(scope, receive, send)
        if int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                return await _error(408, f"the request body did not arrive within {self.body_timeout_s:g} s")(
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
        await _error(413, f"the request body is over the limit of {self.max_body_bytes} bytes; "
                          "send fewer or shorter items per request")(scope, receive, send)
