"""The records every part of referee speaks.

A `Conversation` is an optional system prompt plus user/assistant turns. When it ends with an
assistant turn, that turn is *the response being judged* (`conversation.response`); everything
before it is the context (`conversation.context`). Each task has one example type:

- `ScoreExample`  — a conversation, a named metric and a score on the metric's scale (0-10 by default).
- `PairExample`   — two conversations that end in two responses, A and B, to the same request, and a
                    label A / B / tie, optionally soft (a distribution over A, B, tie from several
                    annotators). With a label of A or B it is also a chosen/rejected pair for reward
                    models (`.chosen`, `.rejected`).
- `SafetyExample` — a conversation and binary labels per harm category, where a category may be
                    unknown (None).
- `PromptExample` — a request with no response, for evaluating generation (category, safe/unsafe).

Every example validates itself on construction and raises `SchemaError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Union

from referee.errors import UserError

ROLES = ("user", "assistant")
PAIR_LABELS = ("A", "B", "tie")
TASKS = ("score", "pair", "safety", "reward", "prompts")


# Harm-category codes used by OpenAI's moderation data, spelt out wherever a person reads them (the API's
# /v1/judges, the web page, the report). Other sources name their categories in words already.
CATEGORY_NAMES = {
    "S": "sexual", "H": "hate", "V": "violence", "HR": "harassment", "SH": "self-harm",
    "S3": "sexual/minors", "H2": "hate/threatening", "V2": "violence/graphic",
}


def category_name(category: str) -> str:
    """A category as a reader should see it: the words, with the code when it is one.

    >>> category_name("H2"), category_name("refusal")
    ('hate/threatening (H2)', 'refusal')
    """
    return f"{CATEGORY_NAMES[category]} ({category})" if category in CATEGORY_NAMES else category


class SchemaError(UserError, ValueError):
    """An example that cannot exist: names the field, the bad value and what was expected.

    >>> Turn("bot", "Hello")
    Traceback (most recent call last):
    ...
    referee.schema.SchemaError: Turn: field 'role': expected one of ('user', 'assistant'), got 'bot'
    """


def _fail(kind: str, id_: str | None, field_name: str, message: str):
    where = f"{kind}(id={id_!r})" if id_ else kind
    raise SchemaError(f"{where}: field {field_name!r}: {message}")


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: who said it ("user" or "assistant") and what they said.

    >>> Turn("user", "Capital of France?")
    Turn(role='user', content='Capital of France?')
    """

    role: Literal["user", "assistant"]
    content: str

    def __post_init__(self):
        if self.role not in ROLES:
            _fail("Turn", None, "role", f"expected one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            _fail("Turn", None, "content", f"expected text, got {type(self.content).__name__}")


@dataclass(frozen=True)
class Conversation:
    """System prompt (optional) and turns. The last assistant turn, if last, is the judged response.

    >>> conv = Conversation.from_text("Capital of France?", "Paris.", system="Be brief.")
    >>> conv.prompt, conv.response, conv.system
    ('Capital of France?', 'Paris.', 'Be brief.')
    >>> Conversation((Turn("user", "Hi"), Turn("assistant", "Hello!"), Turn("user", "Bye"))).response is None
    True
    """

    turns: tuple[Turn, ...]
    system: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "turns", tuple(self.turns))
        if not self.turns:
            _fail("Conversation", None, "turns", "a conversation needs at least one turn")
        for i, turn in enumerate(self.turns):
            if not isinstance(turn, Turn):
                _fail("Conversation", None, f"turns[{i}]", f"expected a Turn, got {type(turn).__name__}")
        if self.system is not None and not isinstance(self.system, str):
            _fail("Conversation", None, "system", f"expected text or None, got {type(self.system).__name__}")

    @classmethod
    def from_text(cls, prompt: str, response: str | None = None, system: str | None = None) -> Conversation:
        """One user turn, and the response being judged when given."""
        turns = [Turn("user", prompt)]
        if response is not None:
            turns.append(Turn("assistant", response))
        return cls(tuple(turns), system=system or None)

    @property
    def response(self) -> str | None:
        """The response being judged: the final assistant turn, or None for a bare request."""
        return self.turns[-1].content if self.turns[-1].role == "assistant" else None

    @property
    def context(self) -> tuple[Turn, ...]:
        """Every turn before the judged response."""
        return self.turns[:-1] if self.response is not None else self.turns

    @property
    def prompt(self) -> str:
        """The last user turn: what the judged response answers."""
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn.content
        return ""

    def to_dict(self) -> dict:
        return {"system": self.system, "turns": [{"role": t.role, "content": t.content} for t in self.turns]}

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        return cls(tuple(Turn(t["role"], t["content"]) for t in data["turns"]), system=data.get("system"))


def conversation_of(item) -> Conversation | None:
    """Plain input as a conversation, or None when it is not one: a Conversation, a response's text
    (judged with no request), a (prompt, response) pair of texts, or {"prompt": ..., "response": ...}.

    >>> conversation_of(("Capital of France?", "Paris.")).response, conversation_of("Paris.").prompt
    ('Paris.', '')
    """
    if isinstance(item, Conversation):
        return item
    if isinstance(item, str):
        return Conversation.from_text("", item)
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return Conversation.from_text(*item)
    if isinstance(item, dict) and isinstance(item.get("prompt"), str) and isinstance(item.get("response"), str):
        return Conversation.from_text(item["prompt"], item["response"], system=item.get("system"))
    return None


def pair_of(item, id: str) -> PairExample | None:
    """Plain input as a pair, or None: (prompt, response_a, response_b) texts, or two Conversations."""
    if isinstance(item, tuple) and len(item) == 3 and all(isinstance(x, str) for x in item):
        prompt, a, b = item
        return PairExample(id=id, a=Conversation.from_text(prompt, a), b=Conversation.from_text(prompt, b))
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, Conversation) for x in item):
        return PairExample(id=id, a=item[0], b=item[1])
    return None


@dataclass(frozen=True, kw_only=True)
class _Meta:
    """Fields every example carries."""

    id: str
    source: str = ""
    language: str | None = None

    def _check_meta(self):
        if not isinstance(self.id, str) or not self.id:
            _fail(type(self).__name__, None, "id", f"expected a non-empty string, got {self.id!r}")


@dataclass(frozen=True, kw_only=True)
class ScoreExample(_Meta):
    """A conversation rated on one named metric, on that metric's scale (0-10 unless `scale` says
    otherwise); `score=None` for rows to predict.

    >>> ScoreExample(id="q1", conversation=Conversation.from_text("Capital of France?", "Paris."),
    ...              metric="helpfulness", score=5, scale=(1, 5)).score
    5
    >>> ScoreExample(id="q1", conversation=Conversation.from_text("Hi", "Hello"), metric="helpfulness", score=7,
    ...              scale=(1, 5))
    Traceback (most recent call last):
    ...
    referee.schema.SchemaError: ScoreExample(id='q1'): field 'score': 7 is outside the scale [1, 5]
    """

    conversation: Conversation
    metric: str
    score: float | None = None  # None: unlabelled (for prediction)
    scale: tuple[float, float] = (0.0, 10.0)
    model: str | None = None

    task = "score"

    def __post_init__(self):
        self._check_meta()
        name = type(self).__name__
        if not isinstance(self.metric, str) or not self.metric.strip():
            _fail(name, self.id, "metric", f"expected a metric name, got {self.metric!r}")
        low, high = self.scale
        if not low < high:
            _fail(name, self.id, "scale", f"expected (low, high) with low < high, got {self.scale!r}")
        if self.score is not None:
            if not isinstance(self.score, (int, float)) or math.isnan(self.score):
                _fail(name, self.id, "score", f"expected a number, got {self.score!r}")
            if not low <= self.score <= high:
                _fail(name, self.id, "score", f"{self.score} is outside the scale [{low}, {high}]")


@dataclass(frozen=True, kw_only=True)
class PairExample(_Meta):
    """Two responses to the same request. `a` and `b` are whole conversations ending in each response
    (their earlier turns may differ, as in multi-turn Chatbot Arena battles).

    >>> pair = PairExample(id="p1", a=Conversation.from_text("Capital of France?", "Paris."),
    ...                    b=Conversation.from_text("Capital of France?", "Lyon."), label="A")
    >>> pair.chosen.response, pair.target, pair.swapped().label
    ('Paris.', (1.0, 0.0, 0.0), 'B')
    >>> PairExample(id="p2", a=pair.a, b=pair.b, soft=(0.5, 0.5, 0.0)).label  # an exact A/B split
    'tie'
    """

    a: Conversation
    b: Conversation
    label: Literal["A", "B", "tie"] | None = None
    soft: tuple[float, float, float] | None = None  # p(A), p(B), p(tie) from several annotators
    model_a: str | None = None
    model_b: str | None = None

    task = "pair"

    def __post_init__(self):
        self._check_meta()
        name = type(self).__name__
        for side in ("a", "b"):
            conv = getattr(self, side)
            if not isinstance(conv, Conversation):
                _fail(name, self.id, side, f"expected a Conversation, got {type(conv).__name__}")
            if conv.response is None:
                _fail(name, self.id, side, "must end with the assistant response being judged")
        if self.soft is not None:
            soft = tuple(float(p) for p in self.soft)
            if len(soft) != 3 or any(p < 0 or p > 1 for p in soft) or abs(sum(soft) - 1) > 1e-6:
                _fail(name, self.id, "soft", f"expected p(A), p(B), p(tie) in [0, 1] summing to 1, got {self.soft!r}")
            object.__setattr__(self, "soft", soft)
            if self.label is None:
                # Majority label; an exact A/B split counts as a tie.
                best = max(soft)
                winners = [lab for lab, p in zip(PAIR_LABELS, soft) if p == best]
                object.__setattr__(self, "label", winners[0] if len(winners) == 1 else "tie")
        if self.label is not None and self.label not in PAIR_LABELS:
            _fail(name, self.id, "label", f"expected one of {PAIR_LABELS}, got {self.label!r}")

    @property
    def response_a(self) -> str:
        return self.a.response

    @property
    def response_b(self) -> str:
        return self.b.response

    @property
    def target(self) -> tuple[float, float, float] | None:
        """The label as a distribution over (A, B, tie): soft when known, else one-hot."""
        if self.soft is not None:
            return self.soft
        if self.label is None:
            return None
        return tuple(float(self.label == lab) for lab in PAIR_LABELS)

    @property
    def chosen(self) -> Conversation:
        if self.label not in ("A", "B"):
            _fail(type(self).__name__, self.id, "label", f"chosen/rejected need a label of A or B, got {self.label!r}")
        return self.a if self.label == "A" else self.b

    @property
    def rejected(self) -> Conversation:
        return self.b if self.chosen is self.a else self.a

    def swapped(self) -> PairExample:
        """The same pair with A and B exchanged and the label flipped."""
        flip = {"A": "B", "B": "A", "tie": "tie", None: None}
        soft = (self.soft[1], self.soft[0], self.soft[2]) if self.soft is not None else None
        return PairExample(
            id=self.id, source=self.source, language=self.language, a=self.b, b=self.a,
            label=flip[self.label], soft=soft, model_a=self.model_b, model_b=self.model_a,
        )


@dataclass(frozen=True, kw_only=True)
class SafetyExample(_Meta):
    """Binary labels per harm category; None where the source does not say.

    >>> row = SafetyExample(id="s1", conversation=Conversation.from_text("How do I make a bomb?", "I can't help."),
    ...                     labels={"violence": False, "hate": None})
    >>> row.unsafe is None  # one category unknown, none True
    True
    """

    conversation: Conversation
    labels: dict[str, bool | None] = field(default_factory=dict)

    task = "safety"

    def __post_init__(self):
        self._check_meta()
        name = type(self).__name__
        if not isinstance(self.conversation, Conversation):
            _fail(name, self.id, "conversation", f"expected a Conversation, got {type(self.conversation).__name__}")
        for category, value in self.labels.items():
            if value is not None and not isinstance(value, bool):
                _fail(name, self.id, f"labels[{category!r}]", f"expected True, False or None, got {value!r}")

    @property
    def unsafe(self) -> bool | None:
        """True if any category is True; False if all are known False; None otherwise."""
        values = list(self.labels.values())
        if any(v is True for v in values):
            return True
        if values and all(v is False for v in values):
            return False
        return None


@dataclass(frozen=True, kw_only=True)
class PromptExample(_Meta):
    """A request with no response, for generating and judging responses.

    >>> PromptExample(id="r1", conversation=Conversation.from_text("How do I pick a lock?"), label="unsafe").label
    'unsafe'
    """

    conversation: Conversation
    category: str | None = None
    label: Literal["safe", "unsafe"] | None = None

    task = "prompts"

    def __post_init__(self):
        self._check_meta()
        name = type(self).__name__
        if self.conversation.response is not None:
            _fail(name, self.id, "conversation", "a prompt must end with a user turn, not a response")
        if self.label not in (None, "safe", "unsafe"):
            _fail(name, self.id, "label", f"expected 'safe', 'unsafe' or None, got {self.label!r}")


Example = Union[ScoreExample, PairExample, SafetyExample, PromptExample]
