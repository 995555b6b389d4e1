"""`referee demo`: the whole loop on real human-labelled data, with nothing to configure.

Human harm scores (the pyrit scorer-evaluation set, read from its wheel, or `--data` with any
score-labelled file) become three judges of `referee train`'s default backends (score and safety
judges stacks of TF-IDF parts (for scores, of the conversation and of the response) and a
frozen-encoder part; the pair judge TF-IDF; C or alpha chosen by grouped CV, calibrated out of
fold; `features="frozen"` for all-MiniLM-L6-v2 embeddings alone):

- score  — harm 0-10 per category (the source scale mapped to 0-10);
- safety — harmful or not (human score at or above the middle of the scale), with a signed cost;
- pair   — two responses to the same request, the less harmful one preferred, a tie where the human
           scores tie.

The split is grouped by prompt, so no request is on both sides. Each judge is evaluated on the
held-out part beside a trivial baseline (what the training labels alone predict), into one HTML
report and `metrics.json`.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from referee.errors import UserError
from referee.schema import PairExample, SafetyExample, ScoreExample

PAIRS_PER_GROUP = 6  # pairs drawn from one request's responses: keeps big groups from dominating


def to_ten(ex: ScoreExample) -> ScoreExample:
    """The example on a 0-10 scale. `to_ten(score 0.25 on (0, 1)).score -> 2.5`."""
    low, high = ex.scale
    return replace(ex, score=10.0 * (ex.score - low) / (high - low), scale=(0.0, 10.0))


def safety_examples(examples: list[ScoreExample]) -> list[SafetyExample]:
    """Harmful in its own category when the 0-10 score is 5 or more. Other categories are left out
    (unknown); the row's own category decides "any", since the humans judged only that harm."""
    return [SafetyExample(id=ex.id, source=ex.source, language=ex.language, conversation=ex.conversation,
                          labels={ex.metric: ex.score >= 5.0}) for ex in examples]


def pair_examples(examples: list[ScoreExample], seed: int = 0) -> list[PairExample]:
    """Pairs of responses to the same request in the same category: the lower harm score wins, equal
    scores tie. Which response is A alternates at random, so the label carries no position."""
    rng = np.random.default_rng(seed)
    groups = defaultdict(list)
    for ex in examples:
        groups[(ex.conversation.prompt, ex.metric)].append(ex)
    pairs = []
    for (_, metric), group in groups.items():
        combos = list(itertools.combinations(group, 2))
        for k in rng.permutation(len(combos))[:PAIRS_PER_GROUP]:
            x, y = combos[k]
            if x.conversation.response == y.conversation.response:
                continue
            if rng.random() < 0.5:
                x, y = y, x
            label = "tie" if x.score == y.score else ("A" if x.score < y.score else "B")
            pairs.append(PairExample(id=f"{x.id}~{y.id}", source=x.source, language=x.language,
                                     a=x.conversation, b=y.conversation, label=label))
    return pairs


def run_demo(out: str | Path = "referee-demo", data: str | None = None, encoder: str | None = None,
             console: Console | None = None, seed: int = 0, *, features: str | None = None, format: str | None = None,
             columns=None, on_error: str = "raise") -> dict:
    """Train, evaluate and report; returns {"judges": {task: folder}, "results": [...], "report": path}."""
    from referee.data import load, load_default
    from referee.data.split import train_valid_split
    from referee.evaluate import evaluate, write_report
    from referee.evaluate.baselines import baselines
    from referee.evaluate.report import best_baseline, is_baseline
    from referee.jobs.train import default_features
    from referee.judges import PairJudge, SafetyJudge, ScoreJudge

    console = console or Console()
    out = Path(out)
    start = time.perf_counter()
    console.rule("[bold]referee demo")
    loaded = load(data, format, columns=columns, on_error=on_error) if data else load_default(on_error=on_error)
    examples = [to_ten(e) for e in loaded.examples if isinstance(e, ScoreExample) and e.score is not None]
    if len(examples) < 20:
        raise UserError(f"{loaded.path}: the demo needs score-labelled rows (prompt, response, metric, score); "
                        f"this {loaded.format} file gave {len(examples)}. Use `referee train` for other tasks.")
    categories = sorted({e.metric for e in examples})
    console.print(f"data: {loaded.format} ({loaded.path}) — {len(examples)} scored responses, "
                  f"{len(categories)} categories: {', '.join(categories)}")

    train, test = train_valid_split(examples, valid_fraction=0.25, seed=seed)
    sets = {
        "score": (train, test),
        "safety": (safety_examples(train), safety_examples(test)),
        "pair": (pair_examples(train, seed), pair_examples(test, seed + 1)),
    }
    judges = {"score": ScoreJudge, "safety": SafetyJudge, "pair": PairJudge}
    results, folders = [], {}
    for task, cls in judges.items():
        tr, te = sets[task]
        console.print(f"[bold]{task}[/]: training on {len(tr)} rows, holding out {len(te)} (grouped by prompt)")
        t0 = time.perf_counter()
        chosen = features or default_features(task, tr)[0]
        judge = cls(features=chosen, encoder=encoder if chosen == "frozen" else None, seed=seed).fit(tr)
        folders[task] = out / "judges" / task
        judge.save(folders[task])
        console.print(f"  trained in {time.perf_counter() - t0:.1f} s -> {folders[task]}")
        backend = (f"stack of TF-IDF + {judge.encoder_.parts[-1].encoder}" if chosen == "stack"
                   else "TF-IDF" if chosen == "tfidf" else f"{encoder or 'MiniLM'}, frozen")
        results.append(evaluate(judge, te, name=f"{task} judge ({backend})", where="held-out", folder=folders[task]))
    for task in judges:  # what the training labels alone predict, on the same held-out rows
        train_set, test_set = sets[task]
        results += [evaluate(b, test_set, name=b.name, where="held-out") for b in baselines(task, test_set, train_set)]
    report = write_report(out, results, title="referee demo: harm judges on human scores")

    table = Table(title=f"referee demo — {time.perf_counter() - start:.0f} s", show_lines=False)
    for column in ("judge", "train", "held out", "metric", "judge [95% CI]", "baseline"):
        table.add_column(column, justify="left" if column == "judge" else "right")
    for task in judges:
        ours = next(r for r in results if r.task == task and not is_baseline(r))
        base = best_baseline(results, ours)
        metric = ours.primary
        lo, hi = ours.ci.get(metric, (float("nan"), float("nan")))
        table.add_row(task, str(len(sets[task][0])), str(ours.n), metric,
                      f"{ours.metrics[metric]:.3f} [{lo:.2f}, {hi:.2f}]", f"{base.metrics[metric]:.3f}")
    console.print(table)
    console.print(f"judges: {out / 'judges'}\nreport: {report}  (metrics: {out / 'metrics.json'})")
    return {"judges": folders, "results": results, "report": report}
