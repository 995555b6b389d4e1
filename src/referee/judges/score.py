"""Score judge: how does this response rate on metric M? One model for many metrics.

Scores are learned in a normalised [0, 1] space per example (`(score - low) / (high - low)` of its
`scale`), and predictions are clipped to [0, 1] and mapped back to each example's scale.

- tfidf: ridge regression on [f(text), f(text) per metric, one-hot(metric)] — a shared text model
  plus one per metric. A metric not seen in training has no weights: predicting it is an error.
- llm: the same ridge regression, f(text) being what a causal LM says of the response under its
  metric's rubric (`referee.encoders.lm`, the `score` template): its distribution over the score
  tokens 1-5, the expected score on [0, 1], and length features.
- frozen / finetune: `heads.ScoreHead` (concat or two-tower) over the text embedding and a metric
  embedding. Metric embeddings come from a catalogue (a folder with `metric_names.json` and
  `metric_name_embeddings.npy`, as DA5401 ships them) or, without one, from the encoder itself on
  the metric's name — such a judge embeds an unseen metric name at prediction time (zero-shot);
  a catalogue judge accepts any metric of its catalogue and refuses others. Fine-tuning without a
  catalogue embeds the metric names with the encoder being trained, so their embeddings are
  fine-tuned too (and recomputed with the final encoder afterwards).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from referee.errors import UserError
from referee.evaluate.metrics import rmse
from referee.judges.base import LINEAR, Judge, tensor
from referee.schema import ScoreExample, conversation_of

# torch, the heads and the losses are imported inside the methods that build, train or run a head:
# a tfidf judge loads and predicts without torch (see `referee.judges.base.tensor`).

HEADS = ("concat", "two-tower")
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # ridge strengths the capacity search tries
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
    """A 0-10 (or any scale) score per named metric, many metrics with one model.

    Parameters: those of `Judge` (features, encoder, hidden, dropout, lr, epochs, batch_size,
    patience, C, max_chars, seed, progress, finetune), and

    head : "concat" or "two-tower" (`heads.ScoreHead`; frozen / finetune).
    catalogue : a metric catalogue folder (metric_names.json + metric_name_embeddings.npy); None =
        embed metric names with the encoder.
    loss : "mse" or "huber" (frozen / finetune).
    reweight : weight rare target values up (for skewed scores).
    alpha : L2 strength of the tfidf ridge regression; None = chosen by grouped k-fold CV (`capacity_`).

    Learned: `metrics_` (the metrics seen in training), `scales_` (each metric's scale in training, which
    `fill_in` gives unlabelled rows), `validation_` (RMSE on the validation rows).

    Example: learn 1-5 helpfulness ratings, then rate plain text (a response, or (prompt, response)),
    one column per metric, on the judge's own 1-5 scale:

    >>> from referee import Conversation, ScoreExample, ScoreJudge
    >>> rated = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", 5),
    ...          ("How do I boil an egg?", "No idea.", 1),
    ...          ("What is the capital of France?", "Paris is the capital of France.", 5),
    ...          ("What is the capital of France?", "Not sure, look it up.", 2),
    ...          ("How many legs has a spider?", "A spider has eight legs.", 5),
    ...          ("How many legs has a spider?", "No idea, sorry.", 1)]
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(prompt, response),
    ...                      metric="helpfulness", score=score, scale=(1, 5))
    ...         for i, (prompt, response, score) in enumerate(rated)]
    >>> judge = ScoreJudge(progress=False).fit(rows)
    >>> judge.metrics_, judge.scales_
    (['helpfulness'], {'helpfulness': [1.0, 5.0]})
    >>> judge.predict(["A spider has eight legs and spins webs.", ("How do I fry an egg?", "No idea.")]).round(1)
    array([[5.],
           [1.]])
    >>> judge.predict(rows[:2]).round(1)  # examples: (n,), each on its own scale
    array([5., 1.])
    """

    task = "score"
    example_type = ScoreExample
    data_task = "score"
    eval_data = ("score",)
    columns = ("metric", "score")
    label_name = "a score"
    llm_template = "score"

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, head: str = "concat",
                 catalogue: str | None = None, loss: str = "mse", reweight: bool = False, alpha: float | None = None,
                 hidden: int = 256, dropout: float = 0.1, lr: float = 1e-3, epochs: int = 200, batch_size: int = 64,
                 patience: int = 10, C: float | None = None, max_chars: int = 4000, seed: int = 0, progress: bool = True,
                 finetune: dict | None = None,
                 encoder_backend: str | None = None, encoder_windows: int = 1):
        super().__init__(features, encoder, hidden=hidden, dropout=dropout, lr=lr, epochs=epochs,
                         batch_size=batch_size, patience=patience, C=C, max_chars=max_chars, seed=seed,
                         progress=progress, finetune=finetune,
                         encoder_backend=encoder_backend, encoder_windows=encoder_windows)
        self.head = head
        self.catalogue = catalogue
        self.loss = loss
        self.reweight = reweight
        self.alpha = alpha

    @staticmethod
    def labelled(example) -> bool:
        return example.score is not None

    def _check_params(self):
        super()._check_params()
        if self.head not in HEADS:
            raise UserError(f"ScoreJudge: head must be one of {HEADS}, got {self.head!r}")
        if self.loss not in LOSSES:
            raise UserError(f"ScoreJudge: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "huber" and self.features in LINEAR:
            raise UserError(f"ScoreJudge: loss='huber' needs features='frozen' or 'finetune' ({self.features} fits a "
                            "ridge regression)")

    def _targets(self, examples) -> np.ndarray:
        return np.asarray([(ex.score - ex.scale[0]) / (ex.scale[1] - ex.scale[0]) for ex in examples])

    def _weights(self, examples) -> np.ndarray:
        return balance_weights(self._targets(examples)) if self.reweight else np.ones(len(examples))

    def _learn_labels(self, train):
        if len({ex.score for ex in train}) < 2:
            raise UserError(f"ScoreJudge.fit: every score is {train[0].score} (a single value); nothing to learn")
        self.metrics_ = sorted({ex.metric for ex in train})
        # Each metric's scale as the training data gave it (the most common, should rows disagree).
        scales = Counter((ex.metric, tuple(map(float, ex.scale))) for ex in train)
        self.scales_ = {m: list(max((s for (mm, s) in scales if mm == m), key=lambda s: scales[(m, s)]))
                        for m in self.metrics_}

    # --- tfidf ------------------------------------------------------------------------------

    def _metric_index(self, examples, known: list[str]) -> np.ndarray:
        lookup = {m: i for i, m in enumerate(known)}
        unknown = sorted({ex.metric for ex in examples} - set(lookup))
        if unknown:
            shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise UserError(f"ScoreJudge: unknown metric(s) {unknown}; this judge knows: {shown}")
        return np.array([lookup[ex.metric] for ex in examples])

    def _text_features(self, examples) -> sp.csr_matrix:
        """(n, D) what the linear model reads of each example: its TF-IDF row; or (llm) the LM's
        probabilities of the score tokens under its metric's rubric, the expected score on [0, 1],
        then the standardised length features."""
        convs = [ex.conversation for ex in examples]
        if self.features != "llm":
            return sp.csr_matrix(self._embed(convs))
        from referee.encoders.lm import normalise

        p = normalise(self.encoder_.points(convs, [ex.metric for ex in examples]))
        values = np.asarray(self.encoder_.template.labels, dtype=np.float64)
        expected = (p @ values - values.min()) / (np.ptp(values) or 1.0)
        return sp.csr_matrix(np.hstack([p, expected[:, None], self._lengths(convs)]))

    def _linear_features(self, examples) -> sp.csr_matrix:
        """[text, text placed in its metric's block, one-hot metric]: (n, D + M*D + M)."""
        m = self._metric_index(examples, self.metrics_)
        f = self._text_features(examples)
        n, D, M = f.shape[0], f.shape[1], len(self.metrics_)
        row_metric = np.repeat(m, np.diff(f.indptr))
        per_metric = sp.csr_matrix((f.data, f.indices + row_metric * D, f.indptr), shape=(n, M * D))
        onehot = sp.csr_matrix((np.ones(n), (np.arange(n), m)), shape=(n, M))
        return sp.hstack([f, per_metric, onehot], format="csr")

    def _fit_linear(self, train):
        ridge = Ridge(alpha=self.alpha_).fit(self._linear_features(train), self._targets(train),
                                            sample_weight=self._weights(train))
        self.w_, self.b_ = ridge.coef_.astype(np.float64), float(ridge.intercept_)  # as saved

    capacity_param = "alpha"
    capacity_grid = ALPHAS
    cv_loss_name = "rmse_normalised"

    def _set_capacity(self, value: float) -> None:
        self.alpha_ = value

    def _cv_output(self, examples) -> np.ndarray:
        """(n,) predictions on the normalised [0, 1] scale."""
        return np.clip(np.asarray(self._linear_features(examples) @ self.w_).ravel() + self.b_, 0.0, 1.0)

    def _cv_loss(self, u, examples) -> float:
        return float(rmse(self._targets(examples), u))

    def _oof_outputs(self, u, examples) -> dict:
        low, high = (np.array([ex.scale[i] for ex in examples], dtype=np.float64) for i in (0, 1))
        return {"pred": low + u * (high - low)}

    # --- stack --------------------------------------------------------------------------------

    def _stack_features(self, u_parts: list[np.ndarray], examples) -> np.ndarray:
        """The meta-learner's input: each part's [0, 1] prediction, the length features, one-hot metric."""
        m = self._metric_index(examples, self.metrics_)
        return np.hstack([np.stack(u_parts, 1), self._lengths([ex.conversation for ex in examples]),
                          np.eye(len(self.metrics_))[m]])

    def _fit_stack(self, train):
        """Parts' out-of-fold predictions + lengths + metric -> a ridge meta-learner, its alpha chosen
        by CV on the parts' own folds (out-of-fold predictions of the meta-learner come with it)."""
        from referee.judges.stack import fit_stack

        self._fit_lengths(self._conversations(train))
        y, w = self._targets(train), self._weights(train)
        model, found = fit_stack(
            self, train, "alpha", ALPHAS, lambda u: self._stack_features(u, train),
            fit=lambda X, rows, alpha: Ridge(alpha=alpha).fit(X[rows], y[rows], sample_weight=w[rows]),
            predict=lambda model, X, rows: np.clip(model.predict(X[rows]), 0.0, 1.0),
            loss=lambda u, rows: float(rmse(y[rows], u)))
        self.alpha_ = found.chosen
        self.w_, self.b_ = model.coef_.astype(np.float64), float(model.intercept_)
        if found.oof is not None:
            self.oof_ = found

    def _stack_output(self, examples) -> np.ndarray:
        """(n,) the stack's prediction on the [0, 1] scale, before clipping."""
        u_parts = [part._cv_output(examples) for part in self.encoder_.parts]
        return self._stack_features(u_parts, examples) @ self.w_ + self.b_

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
        from referee.judges.heads import ScoreHead

        return ScoreHead(dim, metric_dim, kind=kind, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, valid):
        import torch

        from referee.judges.losses import regression_loss

        self._fit_metric_embeddings()
        e = tensor(self._embed([ex.conversation for ex in train]))
        m = tensor(self._metric_vectors(train))
        y, w = tensor(self._targets(train)), tensor(self._weights(train))
        ve = tensor(self._embed([ex.conversation for ex in valid]))
        vm, vy = tensor(self._metric_vectors(valid)), tensor(self._targets(valid))
        self.head_args_ = dict(dim=e.shape[1], metric_dim=m.shape[1], kind=self.head, hidden=self.hidden,
                               dropout=self.dropout)
        self.head_ = self._new_head()
        self._train_head(lambda i: regression_loss(self.head_(e[i], m[i]), y[i], w[i], self.loss), len(train),
                         lambda: regression_loss(self.head_(ve, vm), vy, torch.ones_like(vy), self.loss))

    def _fit_finetune(self, train, valid, config):
        import torch

        from referee.encoders.transformer import TransformerEncoder
        from referee.judges.heads import ScoreModel
        from referee.judges.losses import regression_loss

        encoder = TransformerEncoder.from_pretrained(config.encoder, max_length=config.max_length)
        self._fit_lengths(self._conversations(train))
        if self.catalogue:
            self._fit_metric_embeddings()  # the catalogue's fixed vectors
            metric_dim = self.metric_embeddings_.shape[1]
        else:
            self.metric_names_ = list(self.metrics_)
            metric_dim = encoder.dim
        self.head_args_ = dict(dim=encoder.dim, metric_dim=metric_dim, kind=self.head, hidden=self.hidden,
                               dropout=self.dropout)
        head = self._build_head(**self.head_args_)
        if config.warm_start:
            self._warm_start(head, train, valid, config.encoder)

        def collate(rows):
            examples, w = [r[0] for r in rows], [r[1] for r in rows]
            inputs = {"tokens": encoder.tokenize(self._texts([ex.conversation for ex in examples]))}
            if self.catalogue:
                inputs["metric_vectors"] = tensor(self._metric_vectors(examples))
            else:
                names = sorted({ex.metric for ex in examples})
                inputs["metric_tokens"] = encoder.tokenize([metric_text(m) for m in names])
                inputs["metric_index"] = torch.tensor([names.index(ex.metric) for ex in examples])
            return inputs, (tensor(self._targets(examples)), tensor(w))

        def loss_fn(outputs, targets):
            return regression_loss(outputs, targets[0], targets[1], self.loss)

        self.encoder_, self.head_ = encoder, head
        self._finetune(ScoreModel(encoder, head), list(zip(train, self._weights(train))), collate, loss_fn, config,
                       valid=[(ex, 1.0) for ex in valid])
        if not self.catalogue:
            self._fit_metric_embeddings()  # the names' embeddings as the fine-tuned encoder now gives them

    # --- predict ----------------------------------------------------------------------------

    def fill_in(self, examples) -> list[ScoreExample]:
        """Unlabelled examples as this judge reads them: on the scale it learnt each metric on and, where
        the data names no metric (the placeholder "score", from a file with no score or metric column),
        once per metric it knows, keeping the example's id.

        A judge trained on 1-5 ratings then predicts 1-5 for a file of questions and answers alone."""
        out = []
        for ex in examples:
            if ex.score is not None:
                out.append(ex)
                continue
            metrics = self.metrics_ if ex.metric == "score" and "score" not in self.metrics_ else [ex.metric]
            out += [replace(ex, metric=m, scale=tuple(self.scales_.get(m, ex.scale))) for m in metrics]
        return out

    plain_input = "ScoreExamples, or conversations / texts / (prompt, response) tuples with metrics=[...]"

    def from_plain(self, item, index: int):
        return None  # plain input needs its metrics: `predict(items, metrics=...)` handles it

    def predict(self, examples, metrics: list[str] | None = None) -> np.ndarray:
        """(n,) scores of ScoreExamples, each on its own scale; for plain input (conversations, a response's
        text, (prompt, response) tuples), (n, k) scores, one column per metric of `metrics` (default: every
        metric the judge knows), each on the scale the judge learnt it on.

            judge.predict(["Sure, here is how to ..."], metrics=["violence"])   # -> array([[2.7]])
        """
        items = list(examples)
        if items and not isinstance(items[0], ScoreExample):
            metrics = list(metrics or self.metrics_)
            rows = []
            for i, item in enumerate(items):
                conversation = conversation_of(item)
                if conversation is None:
                    raise UserError(f"ScoreJudge.predict: item {i} is a {type(item).__name__}; expected {self.plain_input}")
                rows += [ScoreExample(id=str(i), conversation=conversation, metric=m,
                                      scale=tuple(self.scales_.get(m, (0.0, 10.0)))) for m in metrics]
            return self.predict(rows).reshape(len(items), len(metrics))
        examples = self._check_examples(items, "predict")
        if self.features == "stack":
            u = self._stack_output(examples)
        elif self.is_linear():
            u = np.asarray(self._linear_features(examples) @ self.w_).ravel() + self.b_
        else:
            import torch

            e = tensor(self._embed([ex.conversation for ex in examples]))
            with torch.no_grad():
                u = self.head_(e, tensor(self._metric_vectors(examples))).double().numpy()
        low = np.array([ex.scale[0] for ex in examples], dtype=np.float64)
        high = np.array([ex.scale[1] for ex in examples], dtype=np.float64)
        return low + np.clip(u, 0.0, 1.0) * (high - low)

    def validate(self, examples) -> dict[str, float]:
        """RMSE on each example's own scale, and normalised by the scale's span (comparable across metrics)."""
        return self._figures(self.outputs(examples), examples)

    def _figures(self, outputs, examples) -> dict[str, float]:
        pred = outputs["pred"]
        truth = np.array([ex.score for ex in examples])
        span = np.array([ex.scale[1] - ex.scale[0] for ex in examples])
        return {"rmse": float(rmse(truth, pred)), "rmse_normalised": float(rmse(truth / span, pred / span)),
                "n": len(examples)}

    # --- what the code above asks ---------------------------------------------------------------

    def predict_table(self, examples) -> pd.DataFrame:
        return pd.DataFrame({"id": [ex.id for ex in examples], "metric": [ex.metric for ex in examples],
                             "score": self.predict(examples)})

    def outputs(self, examples) -> dict:
        """pred: the predicted score of each example."""
        return {"pred": np.asarray(self.predict(examples), dtype=float)}

    def known_metrics(self) -> list[str] | None:
        """The metrics this judge accepts: its training metrics (tfidf) or its catalogue's; None
        when it embeds any metric name with its encoder (zero-shot)."""
        if self.is_linear() or self.features == "stack":
            return list(self.metrics_)
        return list(self.metric_names_) if self.catalogue else None

    def describe(self) -> dict:
        return {**super().describe(), "metrics": list(self.metrics_), "scales": dict(self.scales_),
                "zero_shot_metrics": self.known_metrics() is None}

    def _state(self):
        state, tensors = super()._state()
        state.update(metrics=self.metrics_, scales=self.scales_)
        if self.is_linear() or self.features == "stack":
            tensors["linear.w"] = np.asarray(self.w_, dtype=np.float64)
            state["intercept"] = self.b_
        else:
            state["metric_names"] = self.metric_names_
            tensors["metric_embeddings"] = np.asarray(self.metric_embeddings_, dtype=np.float32)
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.metrics_ = state["metrics"]
        self.scales_ = state.get("scales", {})  # judges saved before scales were kept: the data's scale
        if "linear.w" in tensors:
            self.w_, self.b_ = tensors["linear.w"], state["intercept"]
        else:
            self.metric_names_, self.metric_embeddings_ = state["metric_names"], tensors["metric_embeddings"]
