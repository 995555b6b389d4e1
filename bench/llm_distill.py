"""Distillation on PandaLM: a fast pair judge trained on GPT-3.5's shipped verdicts mixed with the
human labels (`referee.jobs.teacher`, what `referee train pair --teacher` runs), against the same
judge on human labels alone, under grouped 5-fold CV.

For each outer fold, every student is trained on targets (1 - w) * human + w * teacher (the teacher's
verdict one-hot; a pair the teacher failed on keeps its human label) for each weight w, and scored
against the human labels of the held-out fold. "w picked by CV" is what `referee train --teacher`
does on the outer training part alone (grouped 3-fold CV of the weight, scored on human labels), so
the reported figure never saw the rows it is scored on. The teacher itself is scored on the same rows.

    nice -n 10 python bench/llm_distill.py --students tfidf --C 0.03
    python bench/llm_distill.py --students tfidf --C 0.03 --no-inner-cv \
        --teacher gpt-3.5-turbo-testset-v1.dev.json pandalm-7b-testset-v1.dev.json   # two teachers, averaged
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from referee.data import pandalm
from referee.data.split import kfold
from referee.evaluate.metrics import accuracy, bootstrap_ci, log_loss
from referee.jobs.teacher import GRID, Teacher, read_teacher, weight_search
from referee.judges import PairJudge

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
LABELS = {"A": 0, "B": 1, "tie": 2}
STUDENTS = {  # name: PairJudge settings (the frozen encoder is MiniLM; "frozen" has an MLP head)
    "tfidf": {"features": "tfidf"},
    "frozen": {"features": "frozen"},
    "frozen-linear": {"features": "frozen", "hidden": 0},
    "stack": {"features": "stack"},
    "finetune": {"features": "finetune"},  # MiniLM trained end to end (a GPU); --finetune sets its FinetuneConfig
    "lm": {"features": "lm"},  # SmolLM2's reading of each response (docs/signal.md), cached on disk
    "stack-lm": {"features": "stack", "encoder": "lm:smollm2"},  # TF-IDF + that
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=["tfidf", "frozen"], choices=list(STUDENTS))
    parser.add_argument("--weights", nargs="+", type=float, default=list(GRID))
    parser.add_argument("--C", type=float, default=None,
                        help="fix the students' C (None: each fit chooses it by its own 3-fold CV, 6x the time)")
    parser.add_argument("--no-inner-cv", action="store_true", help="report each weight alone (the inner CV costs 3x the fits)")
    parser.add_argument("--encoder", default=None, help="the students' encoder (default: the packaged MiniLM)")
    parser.add_argument("--finetune", type=json.loads, default={},
                        help='the finetune student\'s FinetuneConfig fields as JSON, e.g. \'{"encoder": "/tmp/minilm", "max_length": 512}\'')
    parser.add_argument("--teacher", nargs="+", default=["gpt-3.5-turbo-testset-v1.dev.json"],
                        help="files in --data; several: their verdicts averaged (a failed one left out)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    examples = pandalm.load(args.data / "testset-v1.dev.json").examples
    teacher = averaged([read_teacher(args.data / name, examples) for name in args.teacher])
    human = np.array([ex.target for ex in examples])
    majority = np.array([LABELS[ex.label] for ex in examples])
    folds = kfold(examples, k=5, seed=0)  # the folds weight_search makes of the same rows
    print(f"PandaLM: {len(examples)} pairs, {teacher.note(examples)}; grouped 5-fold CV, "
          f"students' C {'by their own CV' if args.C is None else f'fixed at {args.C:g}'}\n")
    print("| student | trained on | log loss vs humans | accuracy vs majority (3-way) |\n|---|---|---|---|")
    said = np.array([-1 if teacher.targets.get(ex.id) is None else teacher.targets[ex.id].argmax() for ex in examples])
    hits = (said == majority).astype(float)  # a failed verdict counts wrong
    lo, hi = bootstrap_ci(lambda h: h.mean(axis=-1), hits)
    print(f"| teacher alone | — | — | {hits.mean():.3f} [{lo:.2f}, {hi:.2f}] |", flush=True)
    for student in args.students:
        settings = {**STUDENTS[student], **({"finetune": {"progress": False, **args.finetune}} if student == "finetune" else {})}
        if student != "tfidf" and "encoder" not in settings:
            settings["encoder"] = args.encoder
        judge = PairJudge(**settings, progress=False, epochs=100, patience=10, C=args.C)
        _, oof = weight_search(judge, examples, teacher, grid=args.weights, k=5, seed=0, progress=True)
        for w in args.weights:
            row(student, f"w = {w:g}" + (" (humans only)" if w == 0 else ""), oof[w], human, majority)
        if 0.0 in oof:  # each weight against humans only, on the same rows (a weight picked here would be optimistic)
            for w in (w for w in args.weights if w):
                gain = bootstrap_ci(lambda p, q, y: log_loss(p, y) - log_loss(q, y), oof[w], oof[0.0], human)
                print(f"{student}: log loss at w = {w:g} minus humans only "
                      f"{float(log_loss(oof[w], human) - log_loss(oof[0.0], human)):+.4f} [{gain[0]:+.4f}, {gain[1]:+.4f}]")
        if not args.no_inner_cv:  # what `referee train --teacher` does, on each outer training part alone
            picked, chosen = np.zeros((len(examples), 3)), []
            for train, valid in folds:
                search, _ = weight_search(judge, [examples[i] for i in train], teacher, grid=args.weights, progress=True)
                chosen.append(search.chosen)
                picked[valid] = oof[search.chosen][valid]  # the outer fold's student at that weight
            row(student, f"w picked by inner CV ({', '.join(f'{w:g}' for w in chosen)})", picked, human, majority)
        if not args.no_inner_cv and 0.0 in oof:
            gain = bootstrap_ci(lambda p, q, y: log_loss(p, y) - log_loss(q, y), picked, oof[0.0], human)
            print(f"\n{student}: log loss of w by CV minus humans only {float(log_loss(picked, human) - log_loss(oof[0.0], human)):+.4f} "
                  f"[{gain[0]:+.4f}, {gain[1]:+.4f}] (paired bootstrap; below 0: the teacher helps)\n", flush=True)


def averaged(teachers: list[Teacher]) -> Teacher:
    """One teacher whose verdict on a row is the mean of the given teachers' verdicts on it (those that
    failed left out; None when all failed): where two disagree, a split target."""
    if len(teachers) == 1:
        return teachers[0]
    targets = {}
    for key in dict.fromkeys(k for t in teachers for k in t.targets):
        said = [t.targets[key] for t in teachers if t.targets.get(key) is not None]
        targets[key] = np.mean(said, axis=0) if said else None
    return Teacher(Path(" + ".join(t.path.name for t in teachers)), targets)


def row(student, label, proba, human, majority) -> None:
    lo_ll, hi_ll = bootstrap_ci(log_loss, proba, human)
    lo_acc, hi_acc = bootstrap_ci(lambda p, y: accuracy(p, y, three_way=True), proba, majority)
    print(f"| {student} | {label} | {float(log_loss(proba, human)):.3f} [{lo_ll:.3f}, {hi_ll:.3f}] | "
          f"{float(accuracy(proba, majority, three_way=True)):.3f} [{lo_acc:.2f}, {hi_acc:.2f}] |", flush=True)


if __name__ == "__main__":
    main()
