"""Pair judge: which of two responses would a person prefer, or is it a tie?

Softmax over [A, B, tie] (two-way [A, B] when the training data has no ties). Training sees every
pair both ways round (A and B exchanged, labels flipped); prediction averages the logits of both
orders, so p(A wins | a, b) == p(B wins | b, a) exactly. Soft labels (several annotators) train
against the distribution.

- tfidf: multinomial logistic regression on [f(A) - f(B), len(A) - len(B), |len(A) - len(B)|];
- frozen: `heads.PairHead` over [e(A) - e(B), e(A) * e(B), length differences];
- stack: out-of-fold logits of a tfidf and a frozen linear pair judge + length differences ->
  a logistic meta-learner on antisymmetric / symmetric features (exactly swap-symmetric);
- llm: a causal LM judges each pair shown both ways round (`referee.encoders.lm`); a multinomial
  logistic regression calibrates its averaged verdict log-probs with the length differences;
- finetune: the same head over a transformer trained end to end. A and B go through one encoder in
  one batch (siamese), or as (A, B) and (B, A) sequences (cross-encoder); the head sees both orders
  (swap augmentation); validated on the swap-averaged log loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from referee.errors import UserError
from referee.evaluate.metrics import accuracy, log_loss
from referee.evaluate.calibration import fit_temperature
from referee.judges.base import LENGTH_FEATURES, Judge, linear_state, softmax, tensor
from referee.schema import PAIR_LABELS, PairExample, pair_of

if TYPE_CHECKING:
    import torch

# torch, the heads and the losses are imported inside the methods that build, train or run a head:
# a tfidf judge loads and predicts without torch (see `referee.judges.base.tensor`).

SWAP = [1, 0, 2]  # column order of [A, B, tie] after exchanging A and B


class PairJudge(Judge):
    """Preference between two responses (A, B or tie), swap-symmetric.

    Parameters: those of `Judge` (features, encoder, hidden, dropout, lr, epochs, batch_size,
    patience, C, max_chars, seed, progress, finetune), and

    swap_augment : also train on every pair with A and B exchanged (and its label flipped).

    Learned: `classes_` (["A", "B", "tie"] or ["A", "B"]), `temperature_` (fitted on the out-of-fold
    predictions of the capacity search for linear models and stacks, else 1 until `calibrate`),
    `capacity_` (the chosen C, the CV curve and loss), `validation_` (log loss and accuracy on the
    validation rows); with features="stack", `parts_` (the part judges) and `meta_` (the meta-learner).

    Example: six labelled pairs (A the helpful answer each time: swap augmentation shows the judge
    every pair both ways round), then plain (prompt, response_a, response_b) tuples:

    >>> from referee import Conversation, PairExample, PairJudge
    >>> rows = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", "No idea."),
    ...         ("What is the capital of France?", "Paris is the capital of France.", "Not sure, look it up."),
    ...         ("How do I reverse a list in Python?", "Use reversed(xs) or the slice xs[::-1].", "No idea."),
    ...         ("Name a primary colour.", "Red is a primary colour.", "Not sure."),
    ...         ("How many legs has a spider?", "A spider has eight legs.", "No idea, sorry."),
    ...         ("Translate 'thank you' into French.", "'Thank you' is 'merci' in French.", "Not sure, sorry.")]
    >>> pairs = [PairExample(id=str(i), a=Conversation.from_text(prompt, good),
    ...                      b=Conversation.from_text(prompt, bad), label="A")
    ...          for i, (prompt, good, bad) in enumerate(rows)]
    >>> judge = PairJudge(progress=False).fit(pairs)
    >>> judge.classes_  # no ties in the data: two-way
    ['A', 'B']
    >>> egg = ("How do I fry an egg?", "Heat oil in a pan, crack the egg in and cook it for three minutes.", "No idea.")
    >>> judge.predict([egg, (egg[0], egg[2], egg[1])]).tolist()
    ['A', 'B']
    >>> judge.predict_proba([egg]).round(2)  # p(A), p(B), p(tie), averaged over both orders
    array([[1., 0., 0.]])
    """

    task = "pair"
    example_type = PairExample
    plain_input = "a PairExample, a (prompt, response_a, response_b) tuple of texts, or two Conversations"
    data_task = "pair"
    eval_data = ("pair",)
    columns = ("winner_model_a", "winner_model_b", "winner_tie")
    llm_template = "pair"

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, swap_augment: bool = True,
                 hidden: int = 256, dropout: float = 0.1, lr: float = 1e-3, epochs: int = 200, batch_size: int = 64,
                 patience: int = 10, C: float | None = None, max_chars: int = 4000, seed: int = 0, progress: bool = True,
                 finetune: dict | None = None,
                 encoder_backend: str | None = None, encoder_windows: int = 1):
        super().__init__(features, encoder, hidden=hidden, dropout=dropout, lr=lr, epochs=epochs,
                         batch_size=batch_size, patience=patience, C=C, max_chars=max_chars, seed=seed,
                         progress=progress, finetune=finetune,
                         encoder_backend=encoder_backend, encoder_windows=encoder_windows)
        self.swap_augment = swap_augment

    def from_plain(self, item, index: int):
        return pair_of(item, str(index))

    @staticmethod
    def labelled(example) -> bool:
        return example.target is not None

    # --- fit ------------------------------------------------------------------------------------

    def _targets(self, examples: list[PairExample]) -> np.ndarray:
        """(n, k) label distributions over `classes_`."""
        t = np.asarray([ex.target for ex in examples], dtype=np.float64)
        return t[:, : len(self.classes_)]

    def _learn_labels(self, train):
        targets = np.asarray([ex.target for ex in train])
        if targets[:, 2].sum() == len(train):
            raise UserError("PairJudge.fit: every pair is a tie (a single class); a judge needs A or B wins too")
        self.classes_ = list(PAIR_LABELS) if targets[:, 2].sum() > 0 else ["A", "B"]
        self.temperature_ = 1.0

    def _conversations(self, examples):
        return [ex.a for ex in examples] + [ex.b for ex in examples]

    def _sides(self, examples):
        a = [ex.a for ex in examples]
        b = [ex.b for ex in examples]
        if self.features == "llm":
            # The LM's verdicts with the pair shown as (a, b) and as (b, a): exchanging a and b in the
            # input exchanges the two (cached, hence identical) rows.
            verdicts = self.encoder_.pair(examples)
            return verdicts[:, 0], verdicts[:, 1], self._lengths(a), self._lengths(b)
        if self.features == "finetune" and self.encoder_.cross_encoder:
            # A cross-encoder reads A and B together: e_a = enc(A, B), e_b = enc(B, A).
            e_a, e_b = self.encoder_.transform_pairs(self._texts(a), self._texts(b))
            return e_a, e_b, self._lengths(a), self._lengths(b)
        return self._embed(a), self._embed(b), self._lengths(a), self._lengths(b)

    def _linear_features(self, f_a, f_b, x_a, x_b):
        if self.features == "llm":
            # f_a: log p(A, B, tie) with a shown first; f_b: with b shown first. In a's frame, averaged
            # over both orders and renormalised: s = [a wins, b wins, tie]. Then one antisymmetric and
            # one symmetric term, each a sum whose value does not depend on the order of its parts.
            s = (_log_normalise(f_a) + _log_normalise(f_b)[:, SWAP]) / 2
            lm = np.stack([s[:, 0] - s[:, 1], s[:, 2] - (s[:, 0] + s[:, 1]) / 2], 1)
            return sp.csr_matrix(np.hstack([lm, x_a - x_b, np.abs(x_a - x_b)]))
        return sp.hstack([f_a - f_b, sp.csr_matrix(x_a - x_b), sp.csr_matrix(np.abs(x_a - x_b))], format="csr")

    def _fit_linear(self, train):
        f_a, f_b, x_a, x_b = self._sides(train)
        self.W_, self.b_ = self._logistic(self._linear_features(f_a, f_b, x_a, x_b),
                                          self._linear_features(f_b, f_a, x_b, x_a), self._targets(train), self.C_)

    def _logistic(self, x_ab, x_ba, t, C) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) of a logistic regression on the pairs' features `x_ab` (and, with swap augmentation,
        their swapped features `x_ba` with flipped labels), as (k, d) and (k,) float64."""
        X, T = [x_ab], [t]
        if self.swap_augment:
            X.append(x_ba)
            T.append(t[:, SWAP[: t.shape[1]]])
        X = sp.vstack(X, format="csr") if sp.issparse(x_ab) else np.vstack(X)
        T = np.concatenate(T)
        # Soft labels for a hard-label learner: one row per (example, class) weighted by its probability.
        rows, cols = np.nonzero(T > 0)
        lr = LogisticRegression(C=C, max_iter=2000)
        lr.fit(X[rows], cols, sample_weight=T[rows, cols])
        W, b = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2 and W.shape[0] == 1:  # binary: one logit for class 1 over class 0
            W, b = np.vstack([np.zeros_like(W), W]), np.array([0.0, b[0]])
        return np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)  # as saved

    # --- stack ----------------------------------------------------------------------------------

    def _stack_features(self, z_parts: list[np.ndarray], x_a, x_b) -> tuple[np.ndarray, np.ndarray]:
        """The meta-learner's input in both orders, (x_ab, x_ba). Antisymmetric columns (each part's
        logit(A) - logit(B), the length differences) change sign when A and B are exchanged;
        symmetric ones (each part's tie logit over the mean of A's and B's, |length differences|)
        do not — so the swapped pair's features are exact negations / copies."""
        anti = np.hstack([np.stack([z[:, 0] - z[:, 1] for z in z_parts], 1), x_a - x_b])
        sym = [np.abs(x_a - x_b)]
        if len(self.classes_) == 3:
            sym.insert(0, np.stack([z[:, 2] - (z[:, 0] + z[:, 1]) / 2 for z in z_parts], 1))
        sym = np.hstack(sym)
        return np.hstack([anti, sym]), np.hstack([-anti, sym])

    def _fit_stack(self, train):
        """Parts' out-of-fold logits + length features -> a symmetric logistic meta-learner, its C
        chosen by CV on the parts' own folds; the temperature fitted on its out-of-fold logits."""
        from referee.judges.capacity import GRID
        from referee.judges.stack import fit_stack

        self._fit_lengths(self._conversations(train))
        x_a, x_b = self._lengths([ex.a for ex in train]), self._lengths([ex.b for ex in train])
        t = self._targets(train)
        (self.W_, self.b_), found = fit_stack(
            self, train, "C", GRID, lambda z: self._stack_features(z, x_a, x_b),
            fit=lambda X, rows, C: self._logistic(X[0][rows], X[1][rows], t[rows], C),
            predict=lambda Wb, X, rows: self._meta_logits(*Wb, X[0][rows], X[1][rows]),
            loss=lambda z, rows: float(log_loss(softmax(z), t[rows])))
        self.C_ = found.chosen
        if found.oof is not None:
            self.temperature_ = fit_temperature(found.oof, t)
            self.oof_ = found

    def _meta_logits(self, W, b, x_ab, x_ba, swap_average: bool = True) -> np.ndarray:
        """(n, k) meta logits; averaged over both orders, they are exactly swap-symmetric."""
        z = x_ab @ W.T + b
        if swap_average:
            z = (z + (x_ba @ W.T + b)[:, SWAP[: len(self.classes_)]]) / 2
        return z

    def _cv_output(self, examples) -> np.ndarray:
        """(n, k) swap-averaged logits, before any temperature."""
        return self.decision_function(examples)[:, : len(self.classes_)]

    def _cv_loss(self, z, examples) -> float:
        return float(log_loss(softmax(z), self._targets(examples)))

    def _calibrate_oof(self, z, examples) -> None:
        self.temperature_ = fit_temperature(z, self._targets(examples))

    def _oof_outputs(self, z, examples) -> dict:
        p = softmax(z / self.temperature_)
        return {"proba": np.hstack([p, np.zeros((len(p), 3 - p.shape[1]))]), "temperature": float(self.temperature_)}

    def _build_head(self, dim, n_extra, n_classes, hidden, dropout):
        from referee.judges.heads import PairHead

        return PairHead(dim, n_extra, n_classes, hidden=hidden, dropout=dropout)

    def _swap_loss(self, z: torch.Tensor, z_swapped: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy of (n, k) logits `z` against `t`; with swap augmentation, averaged with
        that of the swapped order's logits `z_swapped` (in swapped column order)."""
        from referee.judges.losses import soft_cross_entropy

        loss = soft_cross_entropy(z, t)
        if self.swap_augment:
            loss = (loss + soft_cross_entropy(z_swapped, t[:, SWAP[: t.shape[1]]])) / 2
        return loss

    def _fit_head(self, train, valid):
        from referee.judges.losses import soft_cross_entropy

        f_a, f_b, x_a, x_b = (tensor(v) for v in self._sides(train))
        t = tensor(self._targets(train))
        vf_a, vf_b, vx_a, vx_b = (tensor(v) for v in self._sides(valid))
        vt = tensor(self._targets(valid))
        self.head_args_ = dict(dim=f_a.shape[1], n_extra=x_a.shape[1], n_classes=len(self.classes_),
                               hidden=self.hidden, dropout=self.dropout)
        self.head_ = self._new_head()
        swap = SWAP[: len(self.classes_)]

        def valid_loss():
            z = (self.head_(vf_a, vf_b, vx_a, vx_b) + self.head_(vf_b, vf_a, vx_b, vx_a)[:, swap]) / 2
            return soft_cross_entropy(z, vt)

        def train_loss(i):
            return self._swap_loss(self.head_(f_a[i], f_b[i], x_a[i], x_b[i]), self.head_(f_b[i], f_a[i], x_b[i], x_a[i]), t[i])

        self._train_head(train_loss, len(train), valid_loss)

    def _fit_finetune(self, train, valid, config):
        from referee.encoders.transformer import TransformerEncoder
        from referee.judges.heads import PairModel

        encoder = TransformerEncoder.from_pretrained(config.encoder, max_length=config.max_length,
                                                     cross_encoder=config.cross_encoder)
        self._fit_lengths(self._conversations(train))
        self.head_args_ = dict(dim=encoder.dim, n_extra=len(LENGTH_FEATURES), n_classes=len(self.classes_),
                               hidden=self.hidden, dropout=self.dropout)
        head = self._build_head(**self.head_args_)
        if config.warm_start:
            self._warm_start(head, train, valid, config.encoder)

        def collate(examples):
            a, b = [ex.a for ex in examples], [ex.b for ex in examples]
            text_a, text_b = self._texts(a), self._texts(b)
            tokens = (encoder.tokenize(text_a + text_b, text_b + text_a) if encoder.cross_encoder
                      else encoder.tokenize(text_a + text_b))
            return {"tokens": tokens, "x_a": tensor(self._lengths(a)), "x_b": tensor(self._lengths(b))}, \
                tensor(self._targets(examples))

        def loss_fn(outputs, targets):  # outputs (n, 2, k): both orders, the swapped one in swapped columns
            return self._swap_loss(outputs[:, 0], outputs[:, 1], targets)

        self.encoder_, self.head_ = encoder, head
        self._finetune(PairModel(encoder, head), train, collate, loss_fn, config, valid=valid,
                       evaluator=SwapAveragedLoss(SWAP[: len(self.classes_)]))

    # --- predict --------------------------------------------------------------------------------

    def _raw(self, f_a, f_b, x_a, x_b) -> np.ndarray:
        """(n, k) logits for A in first position, before swap averaging."""
        if self.is_linear():
            return np.asarray(self._linear_features(f_a, f_b, x_a, x_b) @ self.W_.T) + self.b_
        import torch

        with torch.no_grad():
            return self.head_(*(tensor(v) for v in (f_a, f_b, x_a, x_b))).double().numpy()

    def decision_function(self, examples, swap_average: bool = True) -> np.ndarray:
        """(n, 3) logits over [A, B, tie]; the tie column is -inf for a two-way judge."""
        examples = self._check_examples(examples, "decision_function")
        if self.features == "stack":
            k = len(self.classes_)
            z_parts = [part.decision_function(examples)[:, :k] for part in self.encoder_.parts]
            x_ab, x_ba = self._stack_features(z_parts, self._lengths([ex.a for ex in examples]),
                                              self._lengths([ex.b for ex in examples]))
            z = self._meta_logits(self.W_, self.b_, x_ab, x_ba, swap_average)
        else:
            f_a, f_b, x_a, x_b = self._sides(examples)
            z = self._raw(f_a, f_b, x_a, x_b)
        if swap_average and self.features != "stack":
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
        valid = [ex for ex in self._check_examples(valid, "calibrate") if self.labelled(ex)]
        if not valid:
            raise UserError("PairJudge.calibrate: no labelled pairs")
        k = len(self.classes_)
        self.temperature_ = fit_temperature(self.decision_function(valid)[:, :k], self._targets(valid))
        return self

    def validate(self, examples) -> dict[str, float]:
        """Log loss and accuracy of the swap-averaged prediction against the (soft) labels."""
        return self._figures({"proba": self.predict_proba(examples)}, examples)

    def _figures(self, outputs, examples) -> dict[str, float]:
        k = len(self.classes_)
        p = outputs["proba"][:, :k]
        t = self._targets(examples)
        t = t / t.sum(1, keepdims=True).clip(1e-12)
        return {"log_loss": float(log_loss(p, t)),
                "accuracy": float(accuracy(p, t.argmax(1), three_way=k == 3)), "n": len(examples)}

    # --- what the code above asks ---------------------------------------------------------------

    def predict_table(self, examples) -> pd.DataFrame:
        p = self.predict_proba(examples)
        return pd.DataFrame({"id": [ex.id for ex in examples], **{c: p[:, j] for j, c in enumerate(self.columns)}})

    def outputs(self, examples) -> dict:
        """proba (swap-averaged), proba_first / proba_swapped (one order each, for position bias),
        temperature, and proba_before (uncalibrated) when a temperature is set."""
        out = {"proba": self.predict_proba(examples),
               "proba_first": self.predict_proba(examples, swap_average=False),
               "proba_swapped": self.predict_proba([ex.swapped() for ex in examples], swap_average=False),
               "temperature": float(self.temperature_)}
        if self.temperature_ != 1.0:
            out["proba_before"] = softmax(self.decision_function(examples))
        return out

    def describe(self) -> dict:
        return {**super().describe(), "labels": list(self.classes_), "temperature": float(self.temperature_)}

    # --- save / load ----------------------------------------------------------------------------

    def _state(self):
        state, tensors = super()._state()
        state.update(classes=self.classes_, temperature=self.temperature_)
        if self.is_linear() or self.features == "stack":
            tensors.update(linear_state(self.W_, self.b_))
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.classes_, self.temperature_ = state["classes"], state["temperature"]
        if "linear.W" in tensors:
            self.W_, self.b_ = tensors["linear.W"], tensors["linear.b"]


def _log_normalise(z: np.ndarray) -> np.ndarray:
    """Rows of log-probs renormalised over their columns: z - logsumexp(z)."""
    top = z.max(1, keepdims=True)
    return z - (top + np.log(np.exp(z - top).sum(1, keepdims=True)))


class SwapAveragedLoss:
    """The fine-tuning loop's evaluator: log loss and accuracy of the swap-averaged prediction
    (what the judge will predict), from (n, 2, k) outputs."""

    primary = "log_loss"
    greater_is_better = False

    def __init__(self, swap: list[int]):
        self.swap = swap

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        from referee.judges.losses import soft_cross_entropy

        z = (outputs[:, 0] + outputs[:, 1][:, self.swap]) / 2
        return {"log_loss": float(soft_cross_entropy(z, targets)),
                "accuracy": float((z.argmax(1) == targets.argmax(1)).float().mean())}
