"""What goes over the wire: the request records, worked examples for /docs, and the error shape.

Every POST body is one item or a list of items. Errors are JSON `{"detail": "what to fix", ...}`.
"""

from __future__ import annotations

from typing import Literal, Union

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

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


# --- errors ----------------------------------------------------------------------------------

class ClientError(Exception):
    """A request the client must change: answered with `status` and `detail`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def error_response(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _where(loc) -> str:
    """('body', 0, 'conversation', 'turns') -> 'body[0].conversation.turns'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_detail(errors: list[dict], body) -> list[dict]:
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
