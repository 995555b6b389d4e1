"""Distillation: a pair judge trained on a teacher's verdicts mixed with the human labels.

The teacher is any pair judge referee can load (its `predict_proba` on the training rows) or a
predictions file `referee eval --predictions` reads (referee's pair CSV of probabilities, or a
PandaLM judge-prediction JSON of hard verdicts). Its verdicts are matched to the training rows by
example id, and each labelled row learns from

    target = (1 - w) * human + w * teacher

A row the teacher has no verdict for, or failed on (PandaLM's "garbage"), keeps its human label.
Unless fixed, w is chosen from `GRID` by grouped k-fold CV in which each fold's student learns from
mixed targets of the training folds only and is scored against the *human* labels of the held-out
fold: the teacher's verdicts on held-out rows are never read, so a teacher cannot make itself look
good by agreeing with the rows it is scored on.

    teacher = read_teacher("gpt-3.5-turbo-testset-v1.json", train)
    judge = distil(PairJudge(), train, teacher)   # the weight by grouped CV; judge.teacher_ says which
    judge = distil(PairJudge(), train, teacher, choose_weight(PairJudge(), train, teacher, weight=0.5))
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.base import clone

from referee.errors import UserError

GRID = (0.0, 0.25, 0.5, 0.75)  # the teacher's share; 1 (teacher alone) only by --teacher-weight
FOLDS = 3  # as the capacity search: enough to rank four values, each a whole fit of the judge
FALLBACK = 0.5  # the stated weight when the rows are too few to cross-validate
LOSS = "log_loss vs human labels"


@dataclass
class Teacher:
    """A teacher's verdicts: `targets[id]` is (3,) p(A), p(B), p(tie), or None where it failed."""

    path: Path
    targets: dict[str, np.ndarray | None]

    def mix(self, examples, weight: float) -> list:
        """`examples` with soft targets (1 - weight) * human + weight * teacher where the teacher has a
        verdict and the row a human label; every other row as it was. The human `label` is kept (the
        folds stay stratified by it).

        >>> from referee.schema import Conversation, PairExample
        >>> ex = PairExample(id="1", a=Conversation.from_text("q", "x"), b=Conversation.from_text("q", "y"), label="A")
        >>> Teacher(Path("t.csv"), {"1": np.array([0.0, 1.0, 0.0])}).mix([ex], 0.25)[0].soft
        (0.75, 0.25, 0.0)
        """
        out = []
        for ex in examples:
            said = self.targets.get(ex.id)
            if said is None or ex.target is None:
                out.append(ex)
                continue
            target = (1 - weight) * np.asarray(ex.target, dtype=np.float64) + weight * said
            out.append(replace(ex, soft=tuple(float(v) for v in target)))
        return out

    def coverage(self, examples) -> dict:
        """How many labelled rows the teacher has a verdict for, failed on, or does not know."""
        labelled = [ex for ex in examples if ex.target is not None]
        matched = sum(self.targets.get(ex.id) is not None for ex in labelled)
        failed = sum(ex.id in self.targets and self.targets[ex.id] is None for ex in labelled)
        return {"source": str(self.path), "rows": len(labelled), "matched": matched, "failed": failed}

    def note(self, examples) -> str:
        c = self.coverage(examples)
        return (f"--teacher {c['source']}: verdicts for {c['matched']} of {c['rows']} labelled training rows"
                f" ({c['failed']} failed, {c['rows'] - c['matched'] - c['failed']} unknown: those keep their human label)")


def read_teacher(path: str | Path, examples, trust_encoder: bool = False) -> Teacher:
    """The teacher at `path` (a pair judge folder, or a pair predictions file), with its verdicts on
    `examples`; a UserError when it is not a pair teacher or matches no row by id. `trust_encoder`:
    as for `referee.judges.load_judge`."""
    path = Path(path)
    if path.is_dir():
        targets = _judge_targets(path, examples, trust_encoder)
    elif path.is_file():
        targets = _file_targets(path)
    else:
        raise UserError(f"{path}: no such teacher: expected a pair judge folder or a predictions file")
    if not any(ex.id in targets for ex in examples):
        theirs = ", ".join(map(repr, list(targets)[:3]))
        ours = ", ".join(repr(ex.id) for ex in examples[:3])
        raise UserError(f"{path}: no teacher prediction matches a training row by id (teacher ids {theirs} ...; "
                        f"data ids {ours} ...); predict on the same data file you train on")
    return Teacher(path, targets)


def _judge_targets(folder: Path, examples, trust_encoder: bool) -> dict[str, np.ndarray]:
    from referee.data.split import overlap
    from referee.judges import load_judge

    judge = load_judge(folder, trust_encoder)
    if judge.task != "pair":
        raise UserError(f"{folder}: holds a {judge.task} judge; the teacher of a pair judge is a pair judge "
                        "or a file of pair predictions")
    seen = overlap(examples, judge.train_digest_ or [])
    if seen:  # its verdicts on rows it learnt from are in-sample: closer to the human labels than it is
        print(f"note: --teacher {folder} was trained on the prompts of {seen} of these {len(examples)} rows",
              file=sys.stderr)
    return dict(zip((ex.id for ex in examples), judge.predict_proba(examples)))


def _file_targets(path: Path) -> dict[str, np.ndarray | None]:
    from referee.evaluate.outputs import PAIR_COLUMNS, VERDICT_INDEX, read_predictions

    predictions = read_predictions(path)
    if predictions.task != "pair":
        raise UserError(f"{path}: holds {predictions.task} predictions; the teacher of a pair judge gives "
                        f"id,{','.join(PAIR_COLUMNS)} or PandaLM verdicts")
    if predictions.hard:
        return {key: None if row["verdict"] is None else np.eye(3)[VERDICT_INDEX[row["verdict"]]]
                for key, row in predictions.rows.items()}
    targets = {}
    for key, row in predictions.rows.items():
        p = np.array([row[c] for c in PAIR_COLUMNS], dtype=np.float64)
        if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise UserError(f"{path}: id {key!r}: expected probabilities >= 0 with a positive sum, got {p.tolist()}")
        targets[key] = p / p.sum()  # a CSV's rounding must not make a target sum to 0.999
    return targets


def weight_search(judge, examples, teacher: Teacher, grid=GRID, k: int = FOLDS, seed: int = 0,
                  progress: bool = False):
    """Choose the teacher's weight by grouped k-fold CV: for each w in `grid` a clone of `judge` learns
    from `teacher.mix(training folds, w)` and predicts the held-out fold, scored by log loss against
    its human labels. Returns (`referee.judges.capacity.Search` with param "teacher_weight",
    {w: (n, 3) out-of-fold probabilities}); too few prompts for k folds: `FALLBACK`, said on stderr."""
    from referee.evaluate.metrics import log_loss
    from referee.judges.capacity import Search, folds_or_reason
    from referee.progress import bar

    examples = [ex for ex in examples if ex.target is not None]
    grid = [float(w) for w in grid]
    folds, why = folds_or_reason(examples, k, seed)
    if folds is None:
        note = f"cannot cross-validate the teacher's weight ({why}); using teacher_weight={FALLBACK:g}"
        print(note, file=sys.stderr)
        return Search("teacher_weight", grid, [], FALLBACK, LOSS, note=note), {}
    human = np.array([ex.target for ex in examples])
    student = clone(judge).set_params(progress=False)
    oofs, curve, per_fold = {}, [], []
    steps = bar(total=len(grid) * k, desc="teacher weight", unit="fit", enabled=progress)
    for w in grid:
        oof, losses = np.zeros((len(examples), 3)), []
        for train_idx, valid_idx in folds:
            fitted = clone(student).fit(teacher.mix([examples[i] for i in train_idx], w))
            oof[valid_idx] = fitted.predict_proba([examples[i] for i in valid_idx])
            losses.append(float(log_loss(oof[valid_idx], human[valid_idx])))
            steps.update(1)
        oofs[w] = oof
        curve.append(float(log_loss(oof, human)))
        per_fold.append(losses)
    steps.close()
    best = int(np.argmin(curve))  # a tie goes to the smaller weight: the human labels
    fold_of = np.zeros(len(examples), dtype=int)
    for fold, (_, valid_idx) in enumerate(folds):
        fold_of[valid_idx] = fold
    return Search("teacher_weight", grid, curve, grid[best], LOSS, per_fold[best], oofs[grid[best]], fold_of), oofs


def choose_weight(judge, examples, teacher: Teacher, weight: float | None = None, seed: int = 0,
                  progress: bool = False) -> dict:
    """The teacher's weight and how it was chosen, as `judge.json` keeps it: `weight` when given, else
    `weight_search`'s choice with its CV curve."""
    if weight is not None:
        return {"param": "teacher_weight", "chosen": float(weight), "note": "fixed by --teacher-weight"}
    return weight_search(judge, examples, teacher, seed=seed, progress=progress)[0].summary()


def distil(judge, examples, teacher: Teacher, choice: dict | None = None, valid=None, seed: int = 0,
           progress: bool = False):
    """Fit `judge` on `examples` mixed with `teacher` at the weight `choice` holds (`choose_weight`;
    None: chosen now); returns the judge, with `teacher_` (the teacher, its coverage, the weight and
    how it was chosen) and `validation_` against the human labels."""
    choice = choice or choose_weight(judge, examples, teacher, seed=seed, progress=progress)
    judge.fit(teacher.mix(examples, choice["chosen"]), valid)
    judge.teacher_ = {**teacher.coverage(examples), **choice}
    if valid is None:  # the judge validated on its own (mixed) rows: the same rows again, as humans labelled them
        judge.validation_ = human_validation(judge, examples)
    return judge


def human_validation(judge, examples) -> dict:
    """`validation_` of a judge fitted on mixed `examples`, against their human labels: on the
    capacity search's out-of-fold outputs (linear judges, stacks), else on the judge's own held-out split
    (the mixed rows keep their human label and prompt, so the split is the same)."""
    labelled = [ex for ex in examples if judge.labelled(ex)]
    held = judge._split(labelled, None)[1]
    return judge._validate_out_of_fold(labelled) if held is None else judge.validate(held)
