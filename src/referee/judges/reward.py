"""Reward judge: a Bradley-Terry scalar reward learned from chosen / rejected pairs.

p(chosen preferred) = sigmoid(r(chosen) - r(rejected)); loss -log sigmoid(r_c - r_r - margin).
Rewards are centred: the mean reward of the training responses is 0. Ties are dropped.

- tfidf: logistic regression without intercept on f(chosen) - f(rejected) (both orders), so that
  r(x) = w . f(x) is a linear reward;
- frozen / finetune: `heads.RewardHead` trained on the Bradley-Terry loss (margin option).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from referee.errors import UserError
from referee.judges.base import Judge, sigmoid
from referee.judges.heads import RewardHead, bradley_terry, to_tensor, train_head
from referee.schema import Conversation, PairExample


class RewardJudge(Judge):
    task = "reward"
    example_type = PairExample

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, margin: float = 0.0, **kwargs):
        super().__init__(features, encoder, **kwargs)
        self.margin = margin

    def fit(self, examples, valid=None) -> RewardJudge:
        self._check_params()
        pairs = [ex for ex in self._check_examples(examples, "fit", labelled=True) if ex.label in ("A", "B")]
        if not pairs:
            raise UserError("RewardJudge.fit: no pair has a label of A or B (ties and unlabelled pairs are dropped)")
        if self.margin and self.features == "tfidf":
            raise UserError("RewardJudge: margin needs features='frozen' or 'finetune' (tfidf fits a logistic regression)")
        if valid is not None:
            valid = [ex for ex in self._check_examples(valid, "fit(valid=...)", labelled=True) if ex.label in ("A", "B")]
        if self.features == "finetune":
            return self._fit_finetune(pairs, valid)
        self._seed()
        train, valid = self._split(pairs, valid or None)
        convs = [ex.chosen for ex in train] + [ex.rejected for ex in train]
        self.encoder_ = self._new_encoder().fit(self._texts(convs))
        self._fit_lengths(convs)
        self.offset_ = 0.0
        if self.features == "tfidf":
            self._fit_linear(train)
        else:
            self._fit_head(train, valid)
        self.offset_ = float(self._raw(convs).mean())
        self.validation_ = self._validation(valid)
        return self

    def _inputs(self, convs: list[Conversation]):
        return self._embed(convs), self._lengths(convs)

    def _linear_features(self, f, x):
        return sp.hstack([f, sp.csr_matrix(x)], format="csr")

    def _fit_linear(self, train):
        c = self._linear_features(*self._inputs([ex.chosen for ex in train]))
        r = self._linear_features(*self._inputs([ex.rejected for ex in train]))
        X = sp.vstack([c - r, r - c], format="csr")
        y = np.r_[np.ones(len(train), dtype=int), np.zeros(len(train), dtype=int)]
        lr = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000).fit(X, y)
        self.w_ = lr.coef_[0].astype(np.float64)  # as saved: a loaded judge computes the same sums

    def _build_head(self, dim, n_extra, hidden, dropout):
        return RewardHead(dim, n_extra, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, valid):
        fc, xc = (to_tensor(v) for v in self._inputs([ex.chosen for ex in train]))
        fr, xr = (to_tensor(v) for v in self._inputs([ex.rejected for ex in train]))
        vfc, vxc = (to_tensor(v) for v in self._inputs([ex.chosen for ex in valid]))
        vfr, vxr = (to_tensor(v) for v in self._inputs([ex.rejected for ex in valid]))
        self.head_args_ = dict(dim=fc.shape[1], n_extra=xc.shape[1], hidden=self.hidden, dropout=self.dropout)
        self.head_ = self._new_head()
        self.history_ = train_head(
            self.head_, lambda idx: bradley_terry(self.head_(fc[idx], xc[idx]), self.head_(fr[idx], xr[idx]), self.margin),
            len(train), lambda: bradley_terry(self.head_(vfc, vxc), self.head_(vfr, vxr), self.margin),
            lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, patience=self.patience, seed=self.seed,
            progress=self.progress, desc="reward head")

    def _raw(self, convs: list[Conversation]) -> np.ndarray:
        if self.features == "finetune":
            # finetune seam: the reward model is an HF sequence classifier (referee.encoders.finetune)
            return self.encoder_.reward(self._texts(convs))
        f, x = self._inputs(convs)
        if self.features == "tfidf":
            return np.asarray(self._linear_features(f, x) @ self.w_).ravel()
        with torch.no_grad():
            return self.head_(to_tensor(f), to_tensor(x)).double().numpy()

    def reward(self, conversations) -> np.ndarray:
        """(n,) centred scalar rewards of each conversation's final response."""
        convs = list(conversations)
        if not convs:
            raise UserError("RewardJudge.reward: no conversations given")
        for i, c in enumerate(convs):
            if not isinstance(c, Conversation):
                raise UserError(f"RewardJudge.reward: item {i} is a {type(c).__name__}, expected a Conversation")
        return self._raw(convs) - self.offset_

    def predict_proba(self, examples) -> np.ndarray:
        """(n,) p(A preferred over B) = sigmoid(r(A) - r(B))."""
        examples = self._check_examples(examples, "predict_proba", labelled=False)
        r = self.reward([ex.a for ex in examples] + [ex.b for ex in examples])
        return sigmoid(r[: len(examples)] - r[len(examples):])

    def predict(self, examples) -> np.ndarray:
        """(n,) "A" or "B": the response with the higher reward."""
        return np.where(self.predict_proba(examples) >= 0.5, "A", "B")

    def _validation(self, valid) -> dict[str, float]:
        p = self.predict_proba(valid)
        correct = np.where(np.array([ex.label for ex in valid]) == "A", p > 0.5, p < 0.5)
        return {"pairwise_accuracy": float(correct.mean()), "n": len(valid)}

    def _state(self):
        state, tensors = super()._state()
        state.update(offset=self.offset_, validation=self.validation_)
        if self.features == "tfidf":
            tensors["linear.w"] = np.asarray(self.w_, dtype=np.float64)
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.offset_, self.validation_ = state["offset"], state.get("validation", {})
        if "linear.w" in tensors:
            self.w_ = tensors["linear.w"]
