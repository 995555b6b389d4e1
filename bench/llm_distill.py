"""Distillation on PandaLM: a fast pair judge trained on GPT-3.5's shipped verdicts mixed with the
human labels, against the same judge on human labels alone, under grouped 5-fold CV.

For each outer fold, every student is trained on targets (1 - w) * human + w * teacher (the teacher's
verdict one-hot; a pair the teacher failed on keeps its human label) for each weight w, and scored
against the human labels of the held-out fold. "w picked by CV" chooses w by an inner grouped 3-fold
CV on the outer training part only (log loss against human labels), so the reported figure never saw
the rows it is scored on. The teacher itself is scored on the same rows.

    nice -n 10 python bench/llm_distill.py --students tfidf frozen
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from referee.data import pandalm
from referee.data.split import kfold
from referee.evaluate.metrics import accuracy, bootstrap_ci, log_loss
from referee.judges import PairJudge
from referee.schema import PairExample

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
LABELS = {"A": 0, "B": 1, "tie": 2}


def mixed(examples, teacher: dict, weight: float) -> list[PairExample]:
    """The examples with soft targets (1 - weight) * human + weight * teacher verdict."""
    out = []
    for ex in examples:
        human = np.asarray(ex.target, dtype=float)
        verdict = teacher.get(ex.id)
        target = human if verdict is None else (1 - weight) * human + weight * np.eye(3)[LABELS[verdict]]
        out.append(PairExample(id=ex.id, a=ex.a, b=ex.b, soft=tuple(float(v) for v in target), source=ex.source))
    return out


def fit_predict(student: str, train, valid) -> np.ndarray:
    judge = PairJudge(features=student, progress=False, epochs=100, patience=10)
    return judge.fit(train).predict_proba(valid)


def cv_log_loss(student: str, examples, teacher: dict, weight: float, k: int) -> float:
    """Inner grouped k-fold log loss against the human labels of a student trained at `weight`."""
    losses = []
    for train, valid in kfold(examples, k=k, seed=1):
        proba = fit_predict(student, mixed([examples[i] for i in train], teacher, weight), [examples[i] for i in valid])
        losses.append(float(log_loss(proba, np.array([examples[i].target for i in valid]))))
    return float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=["tfidf", "frozen"], choices=["tfidf", "frozen"])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--teacher", default="gpt-3.5-turbo-testset-v1.dev.json", help="a file in --data")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    examples = pandalm.load(args.data / "testset-v1.dev.json").examples
    teacher = pandalm.load_judge_predictions(args.data / args.teacher)
    human = np.array([ex.target for ex in examples])
    majority = np.array([LABELS[ex.label] for ex in examples])
    folds = kfold(examples, k=5, seed=0)
    print(f"PandaLM: {len(examples)} pairs, teacher {args.teacher} "
          f"({sum(v is None for v in teacher.values())} verdicts missing), grouped 5-fold CV\n")
    print("| student | trained on | log loss vs humans | accuracy vs majority (3-way) |\n|---|---|---|---|")
    said = np.array([LABELS.get(teacher.get(ex.id), -1) for ex in examples])  # -1: no verdict, counted wrong
    hits = (said == majority).astype(float)
    lo, hi = bootstrap_ci(lambda h: h.mean(axis=-1), hits)
    print(f"| teacher alone | — | — | {hits.mean():.3f} [{lo:.2f}, {hi:.2f}] |")
    for student in args.students:
        oof = {w: np.zeros((len(examples), 3)) for w in args.weights}
        picked = np.zeros((len(examples), 3))
        chosen = []
        for train, valid in folds:
            train_rows, valid_rows = [examples[i] for i in train], [examples[i] for i in valid]
            for w in args.weights:
                oof[w][valid] = fit_predict(student, mixed(train_rows, teacher, w), valid_rows)
            best = min(args.weights, key=lambda w: cv_log_loss(student, train_rows, teacher, w, k=3))
            chosen.append(best)
            picked[valid] = oof[best][valid]
        rows = [(f"w = {w:g}" + (" (humans only)" if w == 0 else ""), oof[w]) for w in args.weights]
        rows.append((f"w picked by inner CV ({', '.join(f'{w:g}' for w in chosen)})", picked))
        for label, proba in rows:
            lo_ll, hi_ll = bootstrap_ci(log_loss, proba, human)
            lo_acc, hi_acc = bootstrap_ci(lambda p, y: accuracy(p, y, three_way=True), proba, majority)
            print(f"| {student} | {label} | {float(log_loss(proba, human)):.3f} [{lo_ll:.3f}, {hi_ll:.3f}] | "
                  f"{float(accuracy(proba, majority, three_way=True)):.3f} [{lo_acc:.2f}, {hi_acc:.2f}] |", flush=True)


if __name__ == "__main__":
    main()
