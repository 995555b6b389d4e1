"""A judge sets its own capacity: the strength of its linear model by grouped, stratified k-fold
cross-validation on its training rows, and it keeps the out-of-fold predictions at the chosen value
for calibration (temperature, threshold) and for stacking.

Users train on a few hundred to a few thousand rows, where a fixed C overfits or underfits by more
than any backend choice gains; the search is cheap because each row's features are computed once
(`Remembered`) and only the linear model is refitted.

    found = search(judge, train, "C", GRID)       # the judge's own hooks fit and score each fold
    found.chosen, found.summary()                 # the value, and what judge.json keeps
    found.oof                                     # (n, ...) out-of-fold outputs at the chosen value
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.stats import t as student_t

GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # C of the logistic models
FOLDS = 3  # enough to rank six values; each fold refits only the linear model
FALLBACK = 1.0  # the stated default when the grid cannot be searched
EXTEND = 3  # at most this many values past the grid's edge when the best value lies on it


@dataclass
class Search:
    """What a capacity search found: the grid, its CV curve, the chosen value and its CV loss with a
    95% interval over folds; `oof` holds the out-of-fold outputs at the chosen value (None when the
    search fell back to the default, with `note` saying why)."""

    param: str
    grid: list[float]
    curve: list[float]  # mean CV loss at each grid value
    chosen: float
    loss: str  # what the curve measures (lower is better)
    folds: list[float] = field(default_factory=list)  # the chosen value's loss on each fold
    oof: np.ndarray | None = None
    fold_of: np.ndarray | None = None  # (n,) the fold each row was held out in
    note: str = ""

    def interval(self) -> tuple[float, float]:
        v = np.asarray(self.folds, dtype=np.float64)
        if len(v) < 2:
            return (float("nan"), float("nan"))
        half = float(student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        return (float(v.mean() - half), float(v.mean() + half))

    def summary(self) -> dict:
        """JSON-able: what `judge.json` keeps and `referee train` prints."""
        out = {"param": self.param, "chosen": self.chosen, "grid": self.grid,
               "cv_curve": [round(v, 5) for v in self.curve], "cv_loss": self.loss}
        if self.folds:
            out["cv_mean"] = round(float(np.mean(self.folds)), 5)
            out["cv_interval_95"] = [round(v, 5) for v in self.interval()]
            out["folds"] = len(self.folds)
        if self.note:
            out["note"] = self.note
        return out


class Remembered:
    """An encoder whose `transform` computes each distinct text once: the k x grid refits of a search
    read the same rows again and again. Sparse (tfidf) and dense (frozen) rows alike."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.rows: dict[str, object] = {}

    def transform(self, texts: list[str]):
        missing = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if missing:
            found = self.encoder.transform(missing)
            for i, text in enumerate(missing):
                self.rows[text] = found[i] if sp.issparse(found) else found[i: i + 1]
        blocks = [self.rows[t] for t in texts]
        return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)

    def __getattr__(self, name):  # everything else (dim, save, ...) is the wrapped encoder's
        return getattr(self.encoder, name)


def folds_or_reason(examples, k: int, seed: int):
    """The grouped, stratified folds of `examples`, or (None, why they cannot be made)."""
    from referee.data.split import group_key, kfold

    groups = len({group_key(ex) for ex in examples})
    if groups < k:
        return None, f"{groups} distinct prompt(s), fewer than {k} folds"
    try:
        folds = kfold(examples, k=k, seed=seed)
    except ValueError as err:
        return None, str(err)
    if any(len(valid) == 0 or len(train) == 0 for train, valid in folds):
        return None, "a fold came out empty"
    return folds, None


def search(judge, train: list, param: str, grid, k: int = FOLDS) -> Search:
    """Choose `param` of `judge` from `grid` by k-fold CV on `train` through the judge's hooks:
    `_set_capacity(value)`, `_fit_linear(rows)`, `_cv_output(rows)` and `_cv_loss(outputs, rows)`
    (the judge's encoder is best wrapped in `Remembered` first: every row is read grid x k times).
    A grid that cannot be searched (a single group, too few rows) falls back to the grid's value
    when there is one, else to FALLBACK, and says so in one line on stderr."""
    grid = [float(v) for v in grid]
    folds, why = folds_or_reason(train, k, judge.seed)
    if folds is None:
        chosen = grid[0] if len(grid) == 1 else FALLBACK
        note = f"{type(judge).__name__}: cannot cross-validate {param} ({why}); using {param}={chosen:g}"
        print(note, file=sys.stderr)
        return Search(param, grid, [], chosen, judge.cv_loss_name, note=note)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _search(judge, train, param, grid, folds)


def _search(judge, train: list, param: str, grid: list[float], folds) -> Search:
    # Called with BLAS on one thread. L-BFGS's vector steps gain nothing from a second thread, and on a
    # busy machine OpenBLAS threads that wait for a core made 200 Arena pairs take 90 s instead of 11.5 s
    # (same C, same numbers; OPENBLAS_NUM_THREADS=1 against the default 2, on this 2-core machine).
    from referee.progress import bar

    # grid x k fits: a minute on a few hundred Arena rows, so it shows progress like any long step.
    fits = bar(total=len(grid) * len(folds), desc=f"choosing {param} by {len(folds)}-fold CV", unit="fit",
               enabled=getattr(judge, "progress", False))
    found = {}  # value -> (CV loss, per-fold losses, out-of-fold outputs)

    def cross_validate(value: float) -> None:
        judge._set_capacity(value)
        oof, losses = None, []
        for train_idx, valid_idx in folds:
            judge._fit_linear([train[i] for i in train_idx])
            out = judge._cv_output([train[i] for i in valid_idx])
            oof = np.zeros((len(train), *out.shape[1:])) if oof is None else oof
            oof[valid_idx] = out
            losses.append(judge._cv_loss(out, [train[i] for i in valid_idx]))
            fits.set_postfix_str(f"{param}={value:g}", refresh=False)
            fits.update(1)
        found[value] = (float(judge._cv_loss(oof, train)), losses, oof)

    for value in grid:
        cross_validate(value)
    # A best value on the edge of the grid says the optimum may lie beyond it (PandaLM and Arena chose
    # the smallest C of the grid): step past that edge, by the grid's own ratio there, while it helps.
    for _ in range(EXTEND if len(grid) > 1 else 0):
        values = sorted(found)
        best = min(values, key=lambda v: found[v][0])
        if best == values[0]:
            step = values[0] * values[0] / values[1]
        elif best == values[-1]:
            step = values[-1] * values[-1] / values[-2]
        else:
            break
        fits.total += len(folds)
        cross_validate(float(f"{step:.3g}"))
    fits.close()
    grid = sorted(found)
    curve = [found[v][0] for v in grid]
    best = int(np.argmin(curve))
    fold_of = np.zeros(len(train), dtype=int)
    for fold, (_, valid_idx) in enumerate(folds):
        fold_of[valid_idx] = fold
    per_fold, oofs = [found[v][1] for v in grid], [found[v][2] for v in grid]
    return Search(param, grid, curve, grid[best], judge.cv_loss_name, per_fold[best], oofs[best], fold_of)
