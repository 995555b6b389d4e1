"""What goes over the wire: the request records, worked examples for /docs, and the error shape.

Every POST body is one item or a list of items. Errors are JSON `{"detail": "what to fix", ...}`.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, TypeAdapter, ValidationError, field_validator, model_validator

MAX_METRICS = 64  # distinct metrics per score item
MAX_PROBLEMS = 10  # validation problems reported per request: a 100,000-item body must not get a 9 MB answer

from referee.schema import Conversation, Turn


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
    metrics: list[str] | None = Field(None, min_length=1, description=f"metrics to score, at most {MAX_METRICS} "
                                      "distinct; all the judge knows when left out")
    scale: tuple[FiniteFloat, FiniteFloat] | None = Field(None, description="the scale every score is reported "
                                                          "on; each metric's training scale when left out")

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, metrics):
        metrics = None if metrics is None else list(dict.fromkeys(metrics))  # one score per metric, in order
        if metrics is not None and len(metrics) > MAX_METRICS:
            raise ValueError(f"{len(metrics)} distinct metrics; the limit is {MAX_METRICS} per item: split the request")
        return metrics

    @field_validator("scale")
    @classmethod
    def _proper(cls, scale):
        if scale is None:
            return scale
        low, high = scale
        # high - low must be finite too: [-1.7e308, 1.7e308] overflows to inf and scores to nan.
        if not (low < high and math.isfinite(high - low)):
            raise ValueError(f"expected [low, high] with low < high and a finite high - low, got {list(scale)}")
        return scale

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


# --- errors ----------------------------------------------------------------------------------

class ClientError(Exception):
    """A request the client must change: answered with `status`, `detail` and any `extra` fields."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra


def error_response(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _where(loc) -> str:
    """('body', 0, 'conversation', 'turns') -> 'body[0].conversation.turns'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_items(raw: bytes, item: type[BaseModel], max_items: int) -> tuple[list, bool]:
    """The validated items of a JSON body holding one `item` or a list of them, and whether it was
    a list. The item count is checked before any item is validated, and at most MAX_PROBLEMS
    problems are reported, so the cost of a bad body is bounded by its size, not its item count."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ClientError(400, f"invalid request: body: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ClientError(400, f"invalid request: body: not valid JSON at character {err.pos}: {err.msg}") from None
    except RecursionError:
        raise ClientError(400, "invalid request: body: JSON nested too deeply") from None
    listed = isinstance(data, list)
    if not listed and not isinstance(data, dict):
        raise ClientError(422, "invalid request: body: expected one item (a JSON object) or a list of items, "
                               f"got {type(data).__name__}")
    if listed and not data:
        raise ClientError(422, "the list of items is empty; send one item or a non-empty list")
    if listed and len(data) > max_items:
        raise ClientError(422, f"{len(data)} items in one request; the limit is {max_items}: split the list")
    try:
        return _list_of(item).validate_python(data if listed else [data]), listed
    except ValidationError as err:
        problems = [{"where": _where(("body",) + (e["loc"] if listed else e["loc"][1:])),
                     "problem": e["msg"].removeprefix("Value error, ")} for e in err.errors()[:MAX_PROBLEMS]]
        more = err.error_count() - len(problems)
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        summary += f"; and {err.error_count() - 5} more" if err.error_count() > 5 else ""
        raise ClientError(422, f"invalid request: {summary}", problems=problems, more_problems=more) from None


@cache
def _list_of(item: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(list[item])


def body_schema(item: type[BaseModel], definitions: dict) -> dict:
    """The OpenAPI schema of `item | list[item]`; the models it names are added to `definitions`."""
    schema = TypeAdapter(item | list[item]).json_schema(ref_template="#/components/schemas/{model}")
    definitions.update(schema.pop("$defs", {}))
    return schema

