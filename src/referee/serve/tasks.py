"""Per-task knowledge of the server, and the only place in `serve` that switches on a judge's task:
which endpoint serves it, how request items become its examples, what it computes on one batch, how
its results are shaped per item, and how it describes itself."""

from __future__ import annotations

import numpy as np

from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample
from referee.serve.schemas import ClientError, ConversationItem, PairItem, ScoreItem

ENDPOINTS = {"score": "/v1/score", "pair": "/v1/compare", "safety": "/v1/safety", "reward": "/v1/reward"}
ITEMS = {"score": ScoreItem, "pair": PairItem, "safety": ConversationItem, "reward": ConversationItem}
SUMMARIES = {"score": "Score responses on one or more metrics", "pair": "Compare two responses: p(A), p(B), p(tie)",
             "safety": "Is a response (or a request) unsafe, per category", "reward": "Bradley-Terry reward of responses"}


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


def describe(name: str, judge, version: str) -> dict:
    return {"name": name, "endpoint": ENDPOINTS[judge.task], "version": version, **judge.describe()}


# --- requests in, results out ------------------------------------------------------------------

def to_examples(task: str, judge, items: list) -> tuple[list, list[int]]:
    """The judge's input and how many of its results belong to each item."""
    if task == "score":
        known = judge.known_metrics()
        examples, counts = [], []
        for i, item in enumerate(items):
            metrics = item.metrics or list(judge.metrics_)
            unknown = [m for m in metrics if known is not None and m not in known]
            if unknown:
                shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
                raise ClientError(422, f"unknown metric(s) {unknown}; this judge knows: {shown}")
            conv = item.conversation.to_conversation()
            # Without a scale, each metric comes back on the scale the judge learnt it on (0-10 if unknown).
            examples += [ScoreExample(id=f"request-{i}", conversation=conv, metric=m,
                                      scale=item.scale or tuple(judge.scales_.get(m, (0.0, 10.0)))) for m in metrics]
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


def work(task: str, examples: list) -> int:
    """Conversations the judge reads for `examples`: one per score (conversation, metric) pair, two
    per compared pair, else one. The server caps it per request, so that no request can hold the judge
    for long however its items and metrics multiply."""
    return 2 * len(examples) if task == "pair" else len(examples)


def per_item(task: str, examples: list, counts: list[int], results: list) -> list[dict]:
    """The judge's results grouped back into one answer per request item."""
    out, start = [], 0
    for n in counts:
        chunk = results[start:start + n]
        if task == "score":
            rows = examples[start:start + n]
            scales = {ex.metric: list(ex.scale) for ex in rows}
            shared = next(iter(scales.values())) if len({tuple(v) for v in scales.values()}) == 1 else None
            out.append({"scores": dict(zip(scales, chunk)), "scales": scales, "scale": shared})
        else:
            out.append(chunk[0])
        start += n
    return out
