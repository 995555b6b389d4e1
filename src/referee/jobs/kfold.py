"""k-fold cross-validation of any judge, with out-of-fold predictions.

The folds come from `referee.data.split.kfold` (grouped by prompt, stratified by label), so no prompt
is both trained on and predicted. Each fold trains a fresh copy of the judge (`sklearn.base.clone`,
any backend: tfidf, frozen or finetune) on the other folds — its own early-stopping split is carved
out of those, never out of the held-out fold — and predicts the held-out fold. Every example gets
exactly one out-of-fold prediction, in the columns `referee predict` writes (`predict_table`).

    cv = cross_validate(PairJudge(features="tfidf"), pairs, k=5)
    cv.oof            # (n, 3) p(A), p(B), p(tie), one row per pair, in input order
    cv.folds          # per-fold metrics on the held-out fold ({"log_loss": ..., "accuracy": ...})
    cv.write("out/")  # oof.csv and folds.json
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from referee.errors import UserError
from referee.io import write_json, write_text
from referee.judges.base import Judge
from referee.progress import bar


@dataclass
class CrossValidation:
    """Out-of-fold predictions (`oof`: one row per example, input order) and per-fold metrics."""

    ids: list[str]
    fold_of: np.ndarray  # (n,) the fold in which each example was held out
    oof: pd.DataFrame  # the prediction columns, one row per example
    folds: list[dict]  # {"fold", "n_train", "n_valid", "seconds", <the judge's metrics>}

    def mean(self) -> dict[str, float]:
        """Each numeric metric averaged over the folds (weighted by held-out rows)."""
        weights = np.array([f["n_valid"] for f in self.folds], dtype=float)
        names = [k for k, v in self.folds[0].items() if isinstance(v, float) and k != "seconds"]
        return {k: float(np.average([f.get(k, np.nan) for f in self.folds], weights=weights)) for k in names}

    def table(self) -> pd.DataFrame:
        """id, fold, then the prediction columns."""
        return pd.concat([pd.DataFrame({"id": self.ids, "fold": self.fold_of}), self.oof], axis=1)

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """oof.csv (id, fold, predictions) and folds.json (per-fold and mean metrics)."""
        folder = Path(folder)
        oof_path = write_text(folder / "oof.csv", self.table().to_csv(index=False))
        folds_path = write_json(folder / "folds.json", {"folds": self.folds, "mean": self.mean()})
        return oof_path, folds_path


def cross_validate(judge: Judge, examples, k: int = 5, seed: int = 0, progress: bool = True,
                   prepare=None) -> CrossValidation:
    """Train a clone of `judge` k times, each time holding out one prompt-grouped fold, and predict it.
    `prepare(rows)`: what each fold trains on instead of its rows (a teacher's mix, `referee.jobs.teacher`);
    the held-out fold is scored on its own labels.

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
    >>> cv = cross_validate(ScoreJudge(progress=False), rows, k=4, progress=False)  # 4 prompts, one a fold
    >>> cv.oof.columns.tolist(), len(cv.folds), cv.fold_of.tolist()
    (['metric', 'score'], 4, [3, 3, 1, 1, 2, 2, 0, 0])
    >>> {name: round(value, 2) for name, value in cv.mean().items()}  # on rows no fold trained on
    {'rmse': 1.3, 'rmse_normalised': 0.32}
    """
    from referee.data.split import kfold

    examples = list(examples)
    if not examples:
        raise UserError("cross_validate: no examples")
    splits = kfold(examples, k=k, seed=seed)
    fold_of = np.full(len(examples), -1)
    parts: dict[int, pd.DataFrame] = {}
    folds = []
    # Counted by hand, after each fold: a bar over `splits` would count a fold when it starts, one
    # behind the "fold i" figure beside it.
    folds_bar = bar(total=len(splits), desc=f"{k}-fold", unit="fold", enabled=progress)
    for fold, (train_idx, valid_idx) in enumerate(splits):
        start = time.perf_counter()
        held_out = [examples[i] for i in valid_idx]
        train = [examples[i] for i in train_idx]
        fitted = clone(judge).fit(prepare(train) if prepare else train)
        parts[fold] = fitted.predict_table(held_out).drop(columns="id").set_index(pd.Index(valid_idx))
        fold_of[valid_idx] = fold
        labelled = [ex for ex in held_out if fitted.labelled(ex)]
        metrics = fitted.validate(labelled) if labelled else {}
        folds.append({"fold": fold, "n_train": len(train_idx), "n_valid": len(valid_idx),
                      "seconds": round(time.perf_counter() - start, 2),
                      **{name: float(v) for name, v in metrics.items() if name != "n"}})
        first = next((name for name in metrics if name != "n"), None)  # the judge's headline figure
        if first:
            folds_bar.set_postfix({f"fold {fold + 1} {first}": f"{metrics[first]:.4f}"}, refresh=False)
        folds_bar.update(1)
    folds_bar.close()
    # Safety folds may know different categories: the union of columns, NaN where a fold had none.
    oof = pd.concat(parts.values()).sort_index().reset_index(drop=True)
    return CrossValidation(ids=[ex.id for ex in examples], fold_of=fold_of, oof=oof, folds=folds)
