"""A causal LM as a pointwise safety judge (`SafetyJudge(features="llm")`) and score judge
(`ScoreJudge(features="llm")`), each beside the TF-IDF judge on the same rows and the same grouped folds.

Safety rows: XSTest's annotated completions of Mistral-7B-Instruct (the one model of the three that often
complies with XSTest's unsafe prompts), each labelled by `referee.data.mix.response_harm`: harmful =
full compliance with an unsafe prompt. A stratified sample of `--limit` rows (`--positives` of them
harmful), seed 0. Folds: referee's own grouped k-fold (`kfold`, by prompt, seed 0); every judge is fitted
on the training folds only, exactly as `referee train safety` fits it, and scored on the held-out fold:
- LM zero-shot: p(Yes) renormalised over Yes / No from the `safety` template, nothing fitted (ROC-AUC only);
- referee llm: `SafetyJudge(features="llm", encoder=MODEL)`: the LM's log p(Yes) - log p(No) + length
  features, logistic with C by inner grouped CV, temperature and threshold on out-of-fold outputs;
- referee tfidf: `SafetyJudge(features="tfidf")` (the default judge);
- length only: a logistic regression on the five length features (what the llm judge has besides the LM).
Score rows (`--tasks score`): a random sample of `--limit` of pyrit's human harm scores of responses (the
`default` named source) in its four largest harm categories as metrics, scores 0-1, the same folds and fitting, scored by
RMSE and Spearman's rho against the human scores:
- LM zero-shot: the expected score token (1-5, `score` template, the category as the rubric's metric)
  mapped linearly onto 0-1, nothing fitted;
- referee llm / referee tfidf: `ScoreJudge(features=...)`, ridge with alpha by inner grouped CV;
- length only: a ridge regression on the five length features and the one-hot category;
- category mean: each category's mean training score (the trivial baseline).
Speed: the LM reads every row once (wall and CPU seconds per row, for the rows it actually read this
run; the cache serves the folds). The CPU is shared with other jobs: CPU seconds are the steadier figure.

    nice -n 10 python bench/llm_point.py --limit 60 --positives 24             # both tables
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from referee.data import load
from referee.data.mix import HARMFUL, response_harm
from referee.data.split import kfold
from referee.encoders.lm import LLMFeatures, normalise
from referee.evaluate.metrics import bootstrap_ci, f1, log_loss, rmse, roc_auc, spearman
from referee.judges import SafetyJudge, ScoreJudge
from referee.judges.base import length_features

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "llm_point.json"
SCORE_METRICS = ("violence", "hate_speech", "privacy", "self_harm")


def sample(rows: list, limit: int, positives: int, seed: int) -> list:
    harmful = [r for r in rows if r.labels[HARMFUL]]
    safe = [r for r in rows if not r.labels[HARMFUL]]
    rng = random.Random(seed)
    picked = rng.sample(harmful, min(positives, len(harmful))) + rng.sample(safe, limit - min(positives, len(harmful)))
    rng.shuffle(picked)
    return picked


def with_ci(statistic, *arrays) -> str:
    value = float(statistic(*arrays))
    lo, hi = bootstrap_ci(statistic, *arrays, n_boot=1000)
    return f"{value:.3f} [{lo:.2f}, {hi:.2f}]"


def read_once(args, template: str, convs: list, metrics: list[str]) -> tuple[np.ndarray, dict]:
    """The LM reads every row once, as the llm judge will (same model, template, rubric, cache key):
    (n, k) verdict log-probs, and the seconds it took for the rows not already cached."""
    lm = LLMFeatures(args.model, template)
    lm.lm._load()  # loading is not judging: keep it out of the timing
    wall, cpu = time.perf_counter(), time.process_time()
    logp = lm.points(convs, metrics)
    wall, cpu, read = time.perf_counter() - wall, time.process_time() - cpu, lm.lm.texts_computed
    speed = {"rows read by the LM": read, "wall s": wall, "cpu s": cpu}
    if read:
        speed.update({"wall s per row": wall / read, "cpu s per row": cpu / read})
    return logp, speed


def print_speed(speed: dict) -> None:
    if speed["rows read by the LM"]:
        print(f"\nspeed: {speed['rows read by the LM']} rows read in {speed['wall s']:.0f} s wall, {speed['cpu s']:.0f} s "
              f"CPU: {speed['wall s per row']:.2f} s wall, {speed['cpu s per row']:.2f} s CPU per row "
              "(2 cores shared with other jobs)")


def safety(args) -> dict:
    completions = load(args.data / "xstest" / "xstest_v2_completions_mistralinstruct.csv").examples
    rows = sample([response_harm(r) for r in completions], args.limit, args.positives, args.seed)
    y = np.array([r.labels[HARMFUL] for r in rows], dtype=int)
    convs = [r.conversation for r in rows]

    logp, speed = read_once(args, "safety", convs, [HARMFUL] * len(convs))

    folds = kfold(rows, k=args.folds, seed=args.seed)
    scores = {name: np.zeros(len(rows)) for name in ("referee llm", "referee tfidf", "length only")}
    flagged = {name: np.zeros(len(rows), dtype=bool) for name in ("referee llm", "referee tfidf")}
    fit_seconds = {"referee llm": 0.0, "referee tfidf": 0.0}
    lengths = length_features(convs)
    for train_idx, valid_idx in folds:
        train, valid = [rows[i] for i in train_idx], [rows[i] for i in valid_idx]
        for name, features in (("referee llm", "llm"), ("referee tfidf", "tfidf")):
            start = time.process_time()
            judge = SafetyJudge(features=features, encoder=args.model if features == "llm" else None,
                                progress=False).fit(train)
            fit_seconds[name] += time.process_time() - start
            scores[name][valid_idx] = judge.predict_proba(valid)[:, -1]
            flagged[name][valid_idx] = judge.predict(valid)
        head = LogisticRegression(max_iter=1000).fit(lengths[train_idx], y[train_idx])
        scores["length only"][valid_idx] = head.predict_proba(lengths[valid_idx])[:, 1]

    table = {"LM zero-shot, p(Yes)": {"ROC-AUC": with_ci(roc_auc, y, normalise(logp)[:, 1])}}
    for name, p in scores.items():
        table[name] = {"ROC-AUC": with_ci(roc_auc, y, p),
                       "log loss": with_ci(log_loss, np.stack([1 - p, p], 1), y)}
        if name in flagged:
            table[name]["F1 at its threshold"] = with_ci(f1, y.astype(bool), flagged[name])
    print(f"\nXSTest Mistral completions: {len(rows)} rows ({int(y.sum())} harmful), grouped {args.folds}-fold CV, "
          f"model {args.model}, template safety, on cpu\n")
    print("| judge | ROC-AUC | log loss | F1 at its threshold |\n|---|---|---|---|")
    for name, cells in table.items():
        print(f"| {name} | {cells['ROC-AUC']} | {cells.get('log loss', '')} | {cells.get('F1 at its threshold', '')} |")
    print_speed(speed)
    print(f"fit CPU s over {args.folds} folds: " + ", ".join(f"{k} {v:.1f}" for k, v in fit_seconds.items()))
    return {"rows": len(rows), "harmful": int(y.sum()), "folds": args.folds, "table": table, "speed": speed,
            "fit cpu s (all folds)": fit_seconds}


def score(args) -> dict:
    # The four largest categories: a fold's training part must see every metric its held-out part asks for.
    harm = [r for r in load("default").examples if r.metric in SCORE_METRICS]
    rows = random.Random(args.seed).sample(harm, args.limit)
    y = np.array([(r.score - r.scale[0]) / (r.scale[1] - r.scale[0]) for r in rows])
    logp, speed = read_once(args, "score", [r.conversation for r in rows], [r.metric for r in rows])
    zero_shot = (normalise(logp) @ np.arange(1.0, 6.0) - 1) / 4
    preds = {name: np.zeros(len(rows)) for name in ("referee llm", "referee tfidf", "length only", "category mean")}
    metric = np.array([[r.metric == m for m in SCORE_METRICS] for r in rows], dtype=float)
    lengths = np.hstack([length_features([r.conversation for r in rows]), metric])
    for train_idx, valid_idx in kfold(rows, k=args.folds, seed=args.seed):
        train, valid = [rows[i] for i in train_idx], [rows[i] for i in valid_idx]
        for name, features in (("referee llm", "llm"), ("referee tfidf", "tfidf")):
            judge = ScoreJudge(features=features, encoder=args.model if features == "llm" else None, progress=False)
            preds[name][valid_idx] = judge.fit(train).predict(valid)  # pyrit's scale is 0-1 already
        head = Ridge().fit(lengths[train_idx], y[train_idx])
        preds["length only"][valid_idx] = np.clip(head.predict(lengths[valid_idx]), 0, 1)
        means = {m: y[train_idx][[rows[i].metric == m for i in train_idx]].mean() for m in {r.metric for r in train}}
        preds["category mean"][valid_idx] = [means.get(r.metric, y[train_idx].mean()) for r in valid]
    table = {name: {"RMSE (0-1)": with_ci(rmse, y, p), "Spearman": with_ci(spearman, y, p)}
             for name, p in {"LM zero-shot, expected score": zero_shot, **preds}.items()}
    print(f"\npyrit human harm scores: {len(rows)} rows, {len({r.metric for r in rows})} categories, grouped "
          f"{args.folds}-fold CV, model {args.model}, template score, on cpu\n")
    print("| judge | RMSE (0-1) | Spearman |\n|---|---|---|")
    for name, cells in table.items():
        print(f"| {name} | {cells['RMSE (0-1)']} | {cells['Spearman']} |")
    print_speed(speed)
    return {"rows": len(rows), "folds": args.folds, "table": table, "speed": speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["safety", "score"], choices=["safety", "score"])
    parser.add_argument("--model", default="smollm2", help="an HF folder, hub name, .gguf file or smollm2")
    parser.add_argument("--limit", type=int, default=60, help="rows per task")
    parser.add_argument("--positives", type=int, default=24, help="safety: harmful rows among them")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding xstest/")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results JSON")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {task: {"safety": safety, "score": score}[task](args) for task in args.tasks}
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
