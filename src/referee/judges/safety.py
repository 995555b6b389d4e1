"""Safety judge: is this response harmful, per category and overall?

One sigmoid per category plus "any" (the last column). Unknown labels (None) are left out of the
loss. `cost` is a signed score as in safe-rlhf's cost model: cost > 0 means unsafe at the threshold
chosen on validation data (maximum F1, or a target false-positive rate), which is saved.

- tfidf: one logistic regression per column on the rows where that label is known;
- frozen / finetune: `heads.SafetyHead` with a masked binary cross-entropy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from referee.errors import UserError
from referee.evaluate.calibration import fit_temperature
from referee.judges.base import Judge, linear_state, sigmoid
from referee.judges.heads import SafetyHead, masked_bce, to_tensor, train_head
from referee.schema import SafetyExample

THRESHOLDS = ("f1", "fpr")


def choose_threshold(p: np.ndarray, y: np.ndarray, rule: str = "f1", target_fpr: float = 0.05) -> float:
    """The probability above which a row counts as unsafe.

    f1: the cut with the highest F1 on (p, y); fpr: the lowest cut whose false-positive rate is at
    most `target_fpr`. Cuts sit midway between neighbouring scores.

    >>> choose_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))
    0.5
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return 0.5
    values = np.unique(p)
    cuts = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    if rule == "fpr":
        fpr = np.array([((p > c) & ~y).sum() / (~y).sum() for c in cuts])
        return float(cuts[np.argmax(fpr <= target_fpr)])
    tp = np.array([((p > c) & y).sum() for c in cuts])
    fp = np.array([((p > c) & ~y).sum() for c in cuts])
    f1 = 2 * tp / (2 * tp + fp + (y.sum() - tp))
    return float(cuts[np.argmax(f1)])


class SafetyJudge(Judge):
    task = "safety"
    example_type = SafetyExample

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, threshold: str = "f1",
                 target_fpr: float = 0.05, **kwargs):
        super().__init__(features, encoder, **kwargs)
        self.threshold = threshold
        self.target_fpr = target_fpr

    def _labels(self, examples) -> np.ndarray:
        """(n, C + 1) float: 1 unsafe, 0 safe, NaN unknown; last column "any"."""
        y = np.full((len(examples), len(self.categories_) + 1), np.nan)
        for i, ex in enumerate(examples):
            for j, cat in enumerate(self.categories_):
                value = ex.labels.get(cat)
                if value is not None:
                    y[i, j] = float(value)
            if ex.unsafe is not None:
                y[i, -1] = float(ex.unsafe)
        return y

    def fit(self, examples, valid=None) -> SafetyJudge:
        self._check_params()
        if self.threshold not in THRESHOLDS:
            raise UserError(f"SafetyJudge: threshold must be one of {THRESHOLDS}, got {self.threshold!r}")
        train = self._check_examples(examples, "fit", labelled=True)
        self.categories_ = sorted({cat for ex in train for cat in ex.labels})
        known_any = [ex.unsafe for ex in train if ex.unsafe is not None]
        if len(set(known_any)) < 2:
            what = "no row has a known label" if not known_any else f"every known row is {'unsafe' if known_any[0] else 'safe'}"
            raise UserError(f"SafetyJudge.fit: a single class ({what}); a safety judge needs safe and unsafe rows")
        if self.features == "finetune":
            return self._fit_finetune(train, valid)
        self._seed()
        train, valid = self._split(train, valid)
        convs = [ex.conversation for ex in train]
        self.encoder_ = self._new_encoder().fit(self._texts(convs))
        self._fit_lengths(convs)
        self.temperature_ = 1.0
        if self.features == "tfidf":
            self._fit_linear(train)
        else:
            self._fit_head(train, valid)
        self._fit_threshold(valid)
        self.validation_ = self._validation(valid)
        return self

    def _inputs(self, examples):
        convs = [ex.conversation for ex in examples]
        return self._embed(convs), self._lengths(convs)

    def _fit_linear(self, train):
        f, x = self._inputs(train)
        X = sp.hstack([f, sp.csr_matrix(x)], format="csr")
        y = self._labels(train)
        W, b = np.zeros((y.shape[1], X.shape[1])), np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            known = ~np.isnan(y[:, j])
            labels = y[known, j]
            if len(np.unique(labels)) < 2:
                # One class seen (or none): a constant at the smoothed base rate.
                rate = (labels.sum() + 0.5) / (len(labels) + 1)
                b[j] = np.log(rate / (1 - rate))
                continue
            lr = LogisticRegression(C=self.C, max_iter=2000).fit(X[known], labels.astype(int))
            W[j], b[j] = lr.coef_[0], lr.intercept_[0]
        self.W_, self.b_ = W, b

    def _build_head(self, dim, n_extra, n_outputs, hidden, dropout):
        return SafetyHead(dim, n_extra, n_outputs, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, valid):
        f, x = (to_tensor(v) for v in self._inputs(train))
        y = to_tensor(self._labels(train))
        vf, vx = (to_tensor(v) for v in self._inputs(valid))
        vy = to_tensor(self._labels(valid))
        self.head_args_ = dict(dim=f.shape[1], n_extra=x.shape[1], n_outputs=y.shape[1], hidden=self.hidden,
                               dropout=self.dropout)
        self.head_ = self._new_head()
        self.history_ = train_head(
            self.head_, lambda idx: masked_bce(self.head_(f[idx], x[idx]), y[idx]), len(train),
            lambda: masked_bce(self.head_(vf, vx), vy), lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
            patience=self.patience, seed=self.seed, progress=self.progress, desc="safety head")

    def _fit_threshold(self, valid):
        p = self.predict_proba(valid)[:, -1]
        y = self._labels(valid)[:, -1]
        known = ~np.isnan(y)
        self.threshold_ = choose_threshold(p[known], y[known] == 1, self.threshold, self.target_fpr)

    # --- predict --------------------------------------------------------------------------

    def decision_function(self, examples) -> np.ndarray:
        """(n, C + 1) logits, the last column "any"."""
        examples = self._check_examples(examples, "decision_function", labelled=False)
        f, x = self._inputs(examples)
        if self.features == "tfidf":
            return np.asarray(sp.hstack([f, sp.csr_matrix(x)], format="csr") @ self.W_.T) + self.b_
        with torch.no_grad():
            return self.head_(to_tensor(f), to_tensor(x)).double().numpy()

    def predict_proba(self, examples) -> np.ndarray:
        """(n, C + 1) sigmoid(logits / temperature_): p(unsafe) per category, then "any"."""
        return sigmoid(self.decision_function(examples) / self.temperature_)

    def cost(self, examples) -> np.ndarray:
        """(n,) logit(p_any) - logit(threshold_): > 0 means unsafe at the chosen threshold."""
        z = self.decision_function(examples)[:, -1] / self.temperature_
        t = np.clip(self.threshold_, 1e-12, 1 - 1e-12)
        return z - np.log(t / (1 - t))

    def predict(self, examples) -> np.ndarray:
        """(n,) bool: unsafe at threshold_."""
        return self.cost(examples) > 0

    def calibrate(self, valid) -> SafetyJudge:
        """Fit `temperature_` on the "any" labels of `valid`; the threshold keeps its meaning in
        probability (it is re-chosen on the calibrated probabilities)."""
        valid = self._check_examples(valid, "calibrate", labelled=True)
        y = self._labels(valid)[:, -1]
        known = ~np.isnan(y)
        if not known.any():
            raise UserError("SafetyJudge.calibrate: no row has a known safe/unsafe label")
        z = self.decision_function([ex for ex, k in zip(valid, known) if k])[:, -1]
        self.temperature_ = fit_temperature(np.stack([np.zeros_like(z), z], 1), y[known].astype(int))
        self._fit_threshold(valid)
        return self

    def _validation(self, valid) -> dict[str, float]:
        p = self.predict_proba(valid)
        y = self._labels(valid)
        out = {}
        for j, name in enumerate(self.categories_ + ["any"]):
            known = ~np.isnan(y[:, j])
            if known.any() and len(np.unique(y[known, j])) == 2:
                out[f"roc_auc_{name}"] = float(roc_auc_score(y[known, j], p[known, j]))
        known = ~np.isnan(y[:, -1])
        pred, truth = p[known, -1] > self.threshold_, y[known, -1] == 1
        tp = (pred & truth).sum()
        out["f1_any"] = float(2 * tp / max(1, pred.sum() + truth.sum()))
        out["n"] = len(valid)
        return out

    def _state(self):
        state, tensors = super()._state()
        state.update(categories=self.categories_, temperature=self.temperature_, threshold=self.threshold_,
                     validation=self.validation_)
        if self.features == "tfidf":
            tensors.update(linear_state(self.W_, self.b_))
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.categories_, self.temperature_ = state["categories"], state["temperature"]
        self.threshold_, self.validation_ = state["threshold"], state.get("validation", {})
        if "linear.W" in tensors:
            self.W_, self.b_ = tensors["linear.W"], tensors["linear.b"]
