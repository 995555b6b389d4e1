"""Pair judge: which of two responses would a person prefer, or is it a tie?

Softmax over [A, B, tie] (two-way [A, B] when the training data has no ties). Training sees every
pair both ways round (A and B exchanged, labels flipped); prediction averages the logits of both
orders, so p(A wins | a, b) == p(B wins | b, a) exactly. Soft labels (several annotators) train
against the distribution.

- tfidf: multinomial logistic regression on [f(A) - f(B), len(A) - len(B), |len(A) - len(B)|];
- frozen / finetune: `heads.PairHead` over [e(A) - e(B), e(A) * e(B), length differences].
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from referee.errors import UserError
from referee.evaluate.calibration import fit_temperature
from referee.judges.base import Judge, linear_state, softmax
from referee.judges.heads import PairHead, soft_cross_entropy, to_tensor, train_head
from referee.schema import PAIR_LABELS, PairExample

SWAP = [1, 0, 2]  # column order of [A, B, tie] after exchanging A and B


class PairJudge(Judge):
    task = "pair"
    example_type = PairExample

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, swap_augment: bool = True, **kwargs):
        super().__init__(features, encoder, **kwargs)
        self.swap_augment = swap_augment

    # --- fit ------------------------------------------------------------------------------

    def _targets(self, examples: list[PairExample]) -> np.ndarray:
        """(n, k) label distributions over `classes_`."""
        t = np.asarray([ex.target for ex in examples], dtype=np.float64)
        return t[:, : len(self.classes_)]

    def fit(self, examples, valid=None) -> PairJudge:
        self._check_params()
        train = self._check_examples(examples, "fit", labelled=True)
        train = [ex for ex in train if ex.target is not None]
        if not train:
            raise UserError("PairJudge.fit: no labelled pairs (every label is missing)")
        if self.features == "finetune":
            return self._fit_finetune(train, valid)
        targets = np.asarray([ex.target for ex in train])
        if targets[:, 2].sum() == len(train):
            raise UserError("PairJudge.fit: every pair is a tie (a single class); a judge needs A or B wins too")
        self.classes_ = list(PAIR_LABELS) if targets[:, 2].sum() > 0 else ["A", "B"]
        self._seed()
        train, valid = self._split(train, valid)
        self.encoder_ = self._new_encoder().fit(self._texts([ex.a for ex in train] + [ex.b for ex in train]))
        self._fit_lengths([ex.a for ex in train] + [ex.b for ex in train])
        self.temperature_ = 1.0
        if self.features == "tfidf":
            self._fit_linear(train)
        else:
            self._fit_head(train, valid)
        self.validation_ = self._validation(valid)
        return self

    def _sides(self, examples):
        a = [ex.a for ex in examples]
        b = [ex.b for ex in examples]
        if self.features == "finetune" and self.encoder_.cross_encoder:
            # finetune seam: a cross-encoder reads A and B together: e_a = enc(A, B), e_b = enc(B, A)
            e_a, e_b = self.encoder_.transform_pairs(self._texts(a), self._texts(b))
            return e_a, e_b, self._lengths(a), self._lengths(b)
        return self._embed(a), self._embed(b), self._lengths(a), self._lengths(b)

    def _linear_features(self, f_a, f_b, x_a, x_b):
        return sp.hstack([f_a - f_b, sp.csr_matrix(x_a - x_b), sp.csr_matrix(np.abs(x_a - x_b))], format="csr")

    def _fit_linear(self, train):
        f_a, f_b, x_a, x_b = self._sides(train)
        t = self._targets(train)
        X, T = [self._linear_features(f_a, f_b, x_a, x_b)], [t]
        if self.swap_augment:
            X.append(self._linear_features(f_b, f_a, x_b, x_a))
            T.append(t[:, SWAP[: t.shape[1]]])
        X, T = sp.vstack(X, format="csr"), np.concatenate(T)
        # Soft labels for a hard-label learner: one row per (example, class) weighted by its probability.
        rows, cols = np.nonzero(T > 0)
        lr = LogisticRegression(C=self.C, max_iter=2000)
        lr.fit(X[rows], cols, sample_weight=T[rows, cols])
        W, b = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2 and W.shape[0] == 1:  # binary: one logit for class 1 over class 0
            W, b = np.vstack([np.zeros_like(W), W]), np.array([0.0, b[0]])
        self.W_, self.b_ = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)  # as saved

    def _build_head(self, dim, n_extra, n_classes, hidden, dropout):
        return PairHead(dim, n_extra, n_classes, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, valid):
        f_a, f_b, x_a, x_b = (to_tensor(v) for v in self._sides(train))
        t = to_tensor(self._targets(train))
        vf_a, vf_b, vx_a, vx_b = (to_tensor(v) for v in self._sides(valid))
        vt = to_tensor(self._targets(valid))
        self.head_args_ = dict(dim=f_a.shape[1], n_extra=x_a.shape[1], n_classes=len(self.classes_),
                               hidden=self.hidden, dropout=self.dropout)
        self.head_ = self._new_head()
        swap = SWAP[: len(self.classes_)]

        def train_loss(idx):
            loss = soft_cross_entropy(self.head_(f_a[idx], f_b[idx], x_a[idx], x_b[idx]), t[idx])
            if self.swap_augment:
                loss = (loss + soft_cross_entropy(self.head_(f_b[idx], f_a[idx], x_b[idx], x_a[idx]), t[idx][:, swap])) / 2
            return loss

        def valid_loss():
            z = (self.head_(vf_a, vf_b, vx_a, vx_b) + self.head_(vf_b, vf_a, vx_b, vx_a)[:, swap]) / 2
            return soft_cross_entropy(z, vt)

        self.history_ = train_head(self.head_, train_loss, len(train), valid_loss, lr=self.lr, epochs=self.epochs,
                                   batch_size=self.batch_size, patience=self.patience, seed=self.seed,
                                   progress=self.progress, desc="pair head")

    # --- predict --------------------------------------------------------------------------

    def _raw(self, f_a, f_b, x_a, x_b) -> np.ndarray:
        """(n, k) logits for A in first position, before swap averaging."""
        if self.features == "tfidf":
            return np.asarray(self._linear_features(f_a, f_b, x_a, x_b) @ self.W_.T) + self.b_
        with torch.no_grad():
            return self.head_(*(to_tensor(v) for v in (f_a, f_b, x_a, x_b))).double().numpy()

    def decision_function(self, examples, swap_average: bool = True) -> np.ndarray:
        """(n, 3) logits over [A, B, tie]; the tie column is -inf for a two-way judge."""
        examples = self._check_examples(examples, "decision_function", labelled=False)
        f_a, f_b, x_a, x_b = self._sides(examples)
        z = self._raw(f_a, f_b, x_a, x_b)
        if swap_average:
            k = len(self.classes_)
            # The same sum in both orders (x + y == y + x exactly): swapping the input swaps the output.
            z = (z + self._raw(f_b, f_a, x_b, x_a)[:, SWAP[:k]]) / 2
        if z.shape[1] == 2:
            z = np.hstack([z, np.full((len(z), 1), -np.inf)])
        return z

    def predict_proba(self, examples, swap_average: bool = True) -> np.ndarray:
        """(n, 3) p(A), p(B), p(tie) = softmax(logits / temperature_)."""
        return softmax(self.decision_function(examples, swap_average) / self.temperature_)

    def predict(self, examples, swap_average: bool = True) -> np.ndarray:
        """(n,) "A", "B" or "tie"."""
        return np.asarray(PAIR_LABELS)[self.predict_proba(examples, swap_average).argmax(1)]

    def calibrate(self, valid) -> PairJudge:
        """Fit `temperature_` on labelled pairs (kept apart from the training data)."""
        valid = [ex for ex in self._check_examples(valid, "calibrate", labelled=True) if ex.target is not None]
        if not valid:
            raise UserError("PairJudge.calibrate: no labelled pairs")
        k = len(self.classes_)
        self.temperature_ = fit_temperature(self.decision_function(valid)[:, :k], self._targets(valid))
        return self

    def _validation(self, valid) -> dict[str, float]:
        p = np.clip(self.predict_proba(valid)[:, : len(self.classes_)], 1e-15, 1)
        t = self._targets(valid)
        t = t / t.sum(1, keepdims=True).clip(1e-12)
        return {"log_loss": float(-(t * np.log(p)).sum(1).mean()),
                "accuracy": float((p.argmax(1) == t.argmax(1)).mean()), "n": len(valid)}

    # --- save / load ----------------------------------------------------------------------

    def _state(self):
        state, tensors = super()._state()
        state.update(classes=self.classes_, temperature=self.temperature_, validation=self.validation_)
        if self.features == "tfidf":
            tensors.update(linear_state(self.W_, self.b_))
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.classes_, self.temperature_ = state["classes"], state["temperature"]
        self.validation_ = state.get("validation", {})
        if "linear.W" in tensors:
            self.W_, self.b_ = tensors["linear.W"], tensors["linear.b"]
