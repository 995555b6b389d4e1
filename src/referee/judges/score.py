"""Score judge: how does this response rate on metric M? One model for many metrics.

Scores are learned in a normalised [0, 1] space per example (`(score - low) / (high - low)` of its
`scale`), and predictions are clipped to [0, 1] and mapped back to each example's scale.

- tfidf: ridge regression on [f(text), f(text) per metric, one-hot(metric)] — a shared text model
  plus one per metric. A metric not seen in training has no weights: predicting it is an error.
- frozen / finetune: `heads.ScoreHead` (concat or two-tower) over the text embedding and a metric
  embedding. Metric embeddings come from a catalogue (a folder with `metric_names.json` and
  `metric_name_embeddings.npy`, as DA5401 ships them) or, without one, from the encoder itself on
  the metric's name — such a judge embeds an unseen metric name at prediction time (zero-shot);
  a catalogue judge accepts any metric of its catalogue and refuses others.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import Ridge

from referee.errors import UserError
from referee.judges.base import Judge
from referee.judges.heads import ScoreHead, regression_loss, to_tensor, train_head
from referee.schema import ScoreExample

HEADS = ("concat", "two-tower")
LOSSES = ("mse", "huber")


def metric_text(name: str) -> str:
    """A metric name as words for an encoder: 'harm/self_harm' -> 'harm / self harm'."""
    return name.replace("_", " ").replace("/", " / ").strip()


def balance_weights(y: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inverse-frequency weights of y's histogram bin in [0, 1], mean 1, capped at 10x the mean:
    a rare low score counts more than one of the many 9-10s of a skewed set.

    >>> balance_weights(np.array([0.0, 1.0, 1.0, 1.0])).round(2).tolist()
    [2.0, 0.67, 0.67, 0.67]
    """
    idx = np.minimum((np.asarray(y) * bins).astype(int), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    w = 1.0 / counts[idx]
    w = w / w.mean()
    w = np.minimum(w, 10.0)
    return w / w.mean()


class ScoreJudge(Judge):
    task = "score"
    example_type = ScoreExample

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, head: str = "concat",
                 catalogue: str | None = None, loss: str = "mse", reweight: bool = False, alpha: float = 1.0,
                 **kwargs):
        super().__init__(features, encoder, **kwargs)
        self.head = head
        self.catalogue = catalogue
        self.loss = loss
        self.reweight = reweight
        self.alpha = alpha

    def _targets(self, examples) -> np.ndarray:
        return np.asarray([(ex.score - ex.scale[0]) / (ex.scale[1] - ex.scale[0]) for ex in examples])

    def fit(self, examples, valid=None) -> ScoreJudge:
        self._check_params()
        if self.head not in HEADS:
            raise UserError(f"ScoreJudge: head must be one of {HEADS}, got {self.head!r}")
        if self.loss not in LOSSES:
            raise UserError(f"ScoreJudge: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "huber" and self.features == "tfidf":
            raise UserError("ScoreJudge: loss='huber' needs features='frozen' or 'finetune' (tfidf fits a ridge regression)")
        train = [ex for ex in self._check_examples(examples, "fit", labelled=True) if ex.score is not None]
        if not train:
            raise UserError("ScoreJudge.fit: no example has a score")
        if len({ex.score for ex in train}) < 2:
            raise UserError(f"ScoreJudge.fit: every score is {train[0].score} (a single value); nothing to learn")
        if self.features == "finetune":
            return self._fit_finetune(train, valid)
        self._seed()
        train, valid = self._split(train, valid)
        valid = [ex for ex in valid if ex.score is not None]
        self.metrics_ = sorted({ex.metric for ex in train})
        convs = [ex.conversation for ex in train]
        self.encoder_ = self._new_encoder().fit(self._texts(convs))
        self._fit_lengths(convs)
        y = self._targets(train)
        w = balance_weights(y) if self.reweight else np.ones(len(y))
        if self.features == "tfidf":
            self._fit_linear(train, y, w)
        else:
            self._fit_metric_embeddings()
            self._fit_head(train, y, w, valid)
        self.validation_ = self._validation(valid)
        return self

    # --- tfidf ------------------------------------------------------------------------------

    def _metric_index(self, examples, known: list[str]) -> np.ndarray:
        lookup = {m: i for i, m in enumerate(known)}
        unknown = sorted({ex.metric for ex in examples} - set(lookup))
        if unknown:
            shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise UserError(f"ScoreJudge: unknown metric(s) {unknown}; this judge knows: {shown}")
        return np.array([lookup[ex.metric] for ex in examples])

    def _linear_features(self, examples) -> sp.csr_matrix:
        """[text, text placed in its metric's block, one-hot metric]: (n, D + M*D + M)."""
        m = self._metric_index(examples, self.metrics_)
        f = self._embed([ex.conversation for ex in examples]).tocsr()
        n, D, M = f.shape[0], f.shape[1], len(self.metrics_)
        row_metric = np.repeat(m, np.diff(f.indptr))
        per_metric = sp.csr_matrix((f.data, f.indices + row_metric * D, f.indptr), shape=(n, M * D))
        onehot = sp.csr_matrix((np.ones(n), (np.arange(n), m)), shape=(n, M))
        return sp.hstack([f, per_metric, onehot], format="csr")

    def _fit_linear(self, train, y, w):
        ridge = Ridge(alpha=self.alpha).fit(self._linear_features(train), y, sample_weight=w)
        self.w_, self.b_ = ridge.coef_.astype(np.float64), float(ridge.intercept_)  # as saved

    # --- frozen / finetune -------------------------------------------------------------------

    def _fit_metric_embeddings(self):
        if self.catalogue:
            from referee.data.da5401 import load_catalogue
            self.metric_names_, self.metric_embeddings_ = load_catalogue(self.catalogue)
            missing = sorted(set(self.metrics_) - set(self.metric_names_))
            if missing:
                raise UserError(f"ScoreJudge: metric(s) {missing} are not in the catalogue {self.catalogue}")
        else:
            self.metric_names_ = list(self.metrics_)
            self.metric_embeddings_ = self.encoder_.transform([metric_text(m) for m in self.metrics_])

    def _metric_vectors(self, examples) -> np.ndarray:
        names = [ex.metric for ex in examples]
        new = sorted(set(names) - set(self.metric_names_))
        if new and not self.catalogue:
            # Zero-shot: an encoder-embedded judge can place a metric it never saw by its name.
            extra = self.encoder_.transform([metric_text(m) for m in new])
            lookup = dict(zip(self.metric_names_, self.metric_embeddings_)) | dict(zip(new, extra))
            return np.stack([lookup[n] for n in names])
        return self.metric_embeddings_[self._metric_index(examples, self.metric_names_)]

    def _build_head(self, dim, metric_dim, kind, hidden, dropout):
        return ScoreHead(dim, metric_dim, kind=kind, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, y, w, valid):
        e = to_tensor(self._embed([ex.conversation for ex in train]))
        m = to_tensor(self._metric_vectors(train))
        y, w = to_tensor(y), to_tensor(w)
        ve = to_tensor(self._embed([ex.conversation for ex in valid]))
        vm, vy = to_tensor(self._metric_vectors(valid)), to_tensor(self._targets(valid))
        self.head_args_ = dict(dim=e.shape[1], metric_dim=m.shape[1], kind=self.head, hidden=self.hidden,
                               dropout=self.dropout)
        self.head_ = self._new_head()
        self.history_ = train_head(
            self.head_, lambda idx: regression_loss(self.head_(e[idx], m[idx]), y[idx], w[idx], self.loss), len(train),
            lambda: regression_loss(self.head_(ve, vm), vy, torch.ones_like(vy), self.loss), lr=self.lr,
            epochs=self.epochs, batch_size=self.batch_size, patience=self.patience, seed=self.seed,
            progress=self.progress, desc="score head")

    # --- predict ----------------------------------------------------------------------------

    def predict(self, examples) -> np.ndarray:
        """(n,) scores on each example's own metric scale."""
        examples = self._check_examples(examples, "predict", labelled=False)
        if self.features == "tfidf":
            u = np.asarray(self._linear_features(examples) @ self.w_).ravel() + self.b_
        else:
            e = to_tensor(self._embed([ex.conversation for ex in examples]))
            with torch.no_grad():
                u = self.head_(e, to_tensor(self._metric_vectors(examples))).double().numpy()
        low = np.array([ex.scale[0] for ex in examples], dtype=np.float64)
        high = np.array([ex.scale[1] for ex in examples], dtype=np.float64)
        return low + np.clip(u, 0.0, 1.0) * (high - low)

    def _validation(self, valid) -> dict[str, float]:
        if not valid:
            return {}
        pred = self.predict(valid)
        truth = np.array([ex.score for ex in valid])
        span = np.array([ex.scale[1] - ex.scale[0] for ex in valid])
        return {"rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
                "rmse_normalised": float(np.sqrt(np.mean(((pred - truth) / span) ** 2))), "n": len(valid)}

    def _state(self):
        state, tensors = super()._state()
        state.update(metrics=self.metrics_, validation=self.validation_)
        if self.features == "tfidf":
            tensors["linear.w"] = np.asarray(self.w_, dtype=np.float64)
            state["intercept"] = self.b_
        else:
            state["metric_names"] = self.metric_names_
            tensors["metric_embeddings"] = np.asarray(self.metric_embeddings_, dtype=np.float32)
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.metrics_, self.validation_ = state["metrics"], state.get("validation", {})
        if "linear.w" in tensors:
            self.w_, self.b_ = tensors["linear.w"], state["intercept"]
        else:
            self.metric_names_, self.metric_embeddings_ = state["metric_names"], tensors["metric_embeddings"]
