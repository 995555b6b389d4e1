"""Trivial baselines: what a judge must beat before its number means anything.

Each is a `Predictions` (an outside judge, to the evaluators) named "baseline: ...", so that it is
evaluated like any judge and the report shows it as a row beside them:

    pair    label prior  — every row gets the shares of A, B and tie     (log loss, accuracy)
            longer wins  — the longer response wins, equal lengths tie  (accuracy)
    score   metric mean  — every row gets its metric's mean score       (RMSE)
    safety  base rate    — every row gets each category's unsafe share  (ROC-AUC 0.5 by construction)
    reward  longer wins  — reward = the response's length in characters (pairwise accuracy)

The constants are learnt from `learn_from` (the training rows, when known) or else from the rows
evaluated themselves — the best constant there is, so a judge that does not beat it has learnt nothing
a constant could not say.

    >>> from referee.schema import Conversation, PairExample
    >>> pairs = [PairExample(id=str(i), a=Conversation.from_text("q", "a" * (i + 1)), b=Conversation.from_text("q", "bb"),
    ...                      label=label) for i, label in enumerate(["A", "B", "B", "tie"])]
    >>> [b.name for b in baselines("pair", pairs)]
    ['baseline: label prior', 'baseline: longer wins']
    >>> baselines("pair", pairs)[0].rows["0"]
    {'winner_model_a': 0.25, 'winner_model_b': 0.5, 'winner_tie': 0.25}
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from referee.evaluate.outputs import PAIR_COLUMNS, Predictions

WHERE = Path("<trivial baseline>")
DATA_TASK = {"pair": "pair", "reward": "pair", "score": "score", "safety": "safety"}


def baselines(task: str, examples, learn_from=None) -> list[Predictions]:
    """The trivial baselines of a `task` judge for `examples` of its own task (see the module's table);
    none for a safety judge on prompt data (XSTest), where "flag nothing" is not a fair yardstick.
    `learn_from`: the rows a baseline's prior or mean comes from (default: `examples` themselves).

    >>> from referee import Conversation, ScoreExample, ScoreJudge
    >>> rated = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", 5),
    ...          ("How do I boil an egg?", "No idea.", 1),
    ...          ("What is the capital of France?", "Paris is the capital of France.", 5),
    ...          ("What is the capital of France?", "Not sure, look it up.", 2),
    ...          ("How many legs has a spider?", "A spider has eight legs.", 5),
    ...          ("How many legs has a spider?", "No idea, sorry.", 1),
    ...          ("What colour is the sky?", "The sky is blue on a clear day.", 5),
    ...          ("What colour is the sky?", "Not sure, sorry.", 1)]
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(prompt, response),
    ...                      metric="helpfulness", score=score, scale=(1, 5))
    ...         for i, (prompt, response, score) in enumerate(rated)]
    >>> train, test = rows[:6], rows[6:]  # the sky question is held out
    >>> judge = ScoreJudge(progress=False).fit(train)
    >>> from referee.evaluate.evaluators import evaluate
    >>> [b.name for b in baselines("score", test, learn_from=train)]
    ['baseline: metric mean']
    >>> results = [evaluate(judge, test, name="mine", n_boot=100)]
    >>> results += [evaluate(b, test, name=b.name, n_boot=100) for b in baselines("score", test, learn_from=train)]
    >>> [(r.judge, round(r.metrics["rmse"], 2)) for r in results]
    [('mine', 0.88), ('baseline: metric mean', 2.01)]
    """
    examples = list(examples)
    if not examples or examples[0].task != DATA_TASK[task]:
        return []  # data a judge of this task is not evaluated on: its evaluation says so
    source = list(learn_from) if learn_from is not None else examples
    if task == "pair":
        return [_label_prior(examples, source), _longer_wins(examples)]
    if task == "score":
        return [_metric_mean(examples, source)]
    if task == "safety":
        return [_base_rate(examples, source)]
    if task == "reward":
        return [_longer_reward(examples)]
    raise ValueError(f"no baseline for task {task!r}")


def _label_prior(examples, source) -> Predictions:
    labelled = [ex.target for ex in source if ex.target is not None]
    prior = np.mean(labelled, axis=0) if labelled else np.full(3, 1 / 3)
    row = {c: float(p) for c, p in zip(PAIR_COLUMNS, prior)}
    return Predictions("baseline: label prior", "pair", WHERE, {ex.id: dict(row) for ex in examples})


def _longer_wins(examples) -> Predictions:
    def verdict(a: str, b: str) -> str:
        return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"

    return Predictions("baseline: longer wins", "pair", WHERE, hard=True,
                       rows={ex.id: {"verdict": verdict(ex.response_a, ex.response_b)} for ex in examples})


def _metric_mean(examples, source) -> Predictions:
    scores = defaultdict(list)
    for ex in source:
        if ex.score is not None:
            scores[ex.metric].append(ex.score)
    overall = float(np.mean([s for values in scores.values() for s in values])) if scores else 0.0
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    return Predictions("baseline: metric mean", "score", WHERE,
                       {ex.id: {"metric": ex.metric, "score": means.get(ex.metric, overall)} for ex in examples})


def _base_rate(examples, source) -> Predictions:
    counts, unsafe = Counter(), Counter()
    for ex in source:
        for category, value in ex.labels.items():
            if value is not None:
                counts[category] += 1
                unsafe[category] += value
    rates = {c: unsafe[c] / counts[c] for c in counts}
    known = [ex.unsafe for ex in source if ex.unsafe is not None]
    any_rate = float(np.mean(known)) if known else 0.5
    return Predictions("baseline: base rate", "safety", WHERE, {ex.id: {"p_unsafe": any_rate, **rates} for ex in examples},
                       categories=list(rates))


def _longer_reward(examples) -> Predictions:
    return Predictions("baseline: longer wins", "reward", WHERE,
                       {ex.id: {"reward_a": float(len(ex.response_a)), "reward_b": float(len(ex.response_b))}
                        for ex in examples})
