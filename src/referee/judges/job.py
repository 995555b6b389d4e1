"""The two jobs behind `referee train` and `referee predict`: read data, fit or apply a judge, save
the judge or write a prediction table. The CLI only parses flags and prints what these return."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from referee.errors import UserError
from referee.judges import JUDGES, Judge, PairJudge, RewardJudge, SafetyJudge, ScoreJudge
from referee.judges.config import TrainConfig

# The data task each judge learns from.
DATA_TASK = {"score": "score", "pair": "pair", "safety": "safety", "reward": "pair"}


def read_examples(path: str, format: str | None, task: str, what: str = "--data") -> list:
    """Examples of `path` for a `task` judge, or a UserError naming the mismatch."""
    from referee.data import load

    res = load(path, format=format)
    if not res.examples:
        raise UserError(f"{what} {path}: no examples (format {res.format})")
    if task in DATA_TASK and res.task != DATA_TASK[task]:
        raise UserError(f"{what} {path}: holds {res.task} data (format {res.format}), but a {task} judge "
                        f"learns from {DATA_TASK[task]} data")
    return res.examples


def train(config: TrainConfig) -> dict:
    """Fit the judge `config` describes, save it, and return a summary (metrics, time, folder)."""
    if not config.data:
        raise UserError("referee train: --data is required")
    if not config.out:
        raise UserError("referee train: --out is required")
    start = time.perf_counter()
    examples = read_examples(config.data, config.format, config.task)
    valid = read_examples(config.valid, config.format, config.task, "--valid") if config.valid else None
    if config.valid_split:
        from referee.data.split import train_valid_split
        examples, valid = train_valid_split(examples, valid_fraction=config.valid_split, seed=config.seed)

    def new_judge() -> Judge:
        return JUDGES[config.task](features=config.features, encoder=config.encoder, **config.judge_options())

    summary = {"task": config.task, "features": config.features, "train_rows": len(examples),
               "valid_rows": len(valid) if valid else None}
    if config.folds:
        # --folds (referee.train.kfold): each fold early-stops on a split of its own training folds, never
        # on the held-out fold; the out-of-fold predictions are written beside the judge once it is saved.
        from referee.train.kfold import cross_validate
        cv = cross_validate(new_judge, examples, k=config.folds, seed=config.seed, progress=config.progress)
        summary["cv"] = dict(cv.mean(), folds=config.folds)
    judge = new_judge().fit(examples, valid)
    if config.calibrate and valid and isinstance(judge, (PairJudge, SafetyJudge)):
        judge.calibrate(valid)  # validation_ stays the uncalibrated figure: T is fitted on the same rows
        summary["temperature"] = judge.temperature_
    summary["validation"] = judge.validation_
    if isinstance(judge, SafetyJudge):
        summary["threshold"] = judge.threshold_
    summary["saved"] = str(judge.save(config.out))
    if config.folds:
        summary["oof"], summary["folds_json"] = (str(p) for p in cv.write(Path(summary["saved"]) / "cv"))
    summary["seconds"] = time.perf_counter() - start
    return summary


def prediction_table(judge: Judge, examples: list) -> pd.DataFrame:
    """One row per example, in the columns `referee predict` writes for each kind of judge."""
    ids = [ex.id for ex in examples]
    if isinstance(judge, PairJudge):
        p = judge.predict_proba(_only(examples, "pair", judge))
        return pd.DataFrame({"id": ids, "winner_model_a": p[:, 0], "winner_model_b": p[:, 1], "winner_tie": p[:, 2]})
    if isinstance(judge, ScoreJudge):
        return pd.DataFrame({"id": ids, "metric": [ex.metric for ex in examples],
                             "score": judge.predict(_only(examples, "score", judge))})
    if isinstance(judge, SafetyJudge):
        from referee.schema import SafetyExample
        rows = [ex if ex.task == "safety" else SafetyExample(id=ex.id, conversation=_conversation(ex, judge))
                for ex in examples]
        p, cost = judge.predict_proba(rows), judge.cost(rows)
        table = pd.DataFrame({"id": ids, "p_unsafe": p[:, -1], "cost": cost})
        for j, cat in enumerate(judge.categories_):
            table[cat] = p[:, j]
        return table
    if isinstance(judge, RewardJudge):
        if all(ex.task == "pair" for ex in examples):
            r = judge.reward([ex.a for ex in examples] + [ex.b for ex in examples])
            return pd.DataFrame({"id": ids, "reward_a": r[: len(ids)], "reward_b": r[len(ids):]})
        return pd.DataFrame({"id": ids, "reward": judge.reward([_conversation(ex, judge) for ex in examples])})
    raise UserError(f"no prediction table for {type(judge).__name__}")


def _only(examples, task, judge):
    for i, ex in enumerate(examples):
        if ex.task != task:
            raise UserError(f"row {i} (id={ex.id!r}) is {ex.task} data; a {judge.task} judge predicts on {task} data")
    return examples


def _conversation(ex, judge):
    if ex.task == "pair":
        raise UserError(f"row id={ex.id!r}: a {judge.task} judge scores single conversations, not pairs")
    return ex.conversation


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write `table` to `path` whole or not at all (temporary file, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    os.close(fd)
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def predict(judge_dir: str, data: str, out: str, format: str | None = None) -> dict:
    """Apply a saved judge to `data` and write the table to `out`."""
    from referee.judges import load_judge

    start = time.perf_counter()
    judge = load_judge(judge_dir)
    examples = read_examples(data, format, task="any")
    table = prediction_table(judge, examples)
    write_csv(table, out)
    return {"rows": len(table), "columns": list(table.columns), "out": str(out),
            "seconds": time.perf_counter() - start}
