"""Reward judge: a Bradley-Terry scalar reward learned from chosen / rejected pairs.

p(chosen preferred) = sigmoid(r(chosen) - r(rejected)); loss -log sigmoid(r_c - r_r - margin).
Rewards are centred: the mean reward of the training responses is 0. Ties are dropped.

- tfidf: logistic regression without intercept on f(chosen) - f(rejected) (both orders), so that
  r(x) = w . f(x) is a linear reward;
- frozen: `heads.RewardHead` trained on the Bradley-Terry loss (margin option);
- lm: the tfidf judge's logistic on a causal LM's features of each response (`LMStates`);
- stack: TF-IDF and frozen / lm reward judges as parts, their out-of-fold rewards and the length
  features under one logistic without intercept (`_fit_stack`): again a linear reward;
- finetune: an HF sequence classifier with one label (no length features: the saved folder must
  load in TRL as it is), Bradley-Terry loss; the centring goes into the output bias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from referee.errors import UserError
from referee.evaluate.metrics import pairwise_accuracy
from referee.judges.base import Judge, sigmoid, tensor
from referee.schema import Conversation, PairExample, conversation_of, pair_of

if TYPE_CHECKING:
    import torch

# torch, the heads and the losses are imported inside the methods that build, train or run a head:
# a tfidf judge loads and predicts without torch (see `referee.judges.base.tensor`).


class RewardJudge(Judge):
    """A scalar reward per response, learned from preference pairs.

    Parameters: those of `Judge` (features, encoder, hidden, dropout, lr, epochs, batch_size,
    patience, C, max_chars, seed, progress, finetune), and

    margin : Bradley-Terry margin (frozen / finetune).

    Learned: `offset_` (the centring still to subtract), `validation_` (pairwise accuracy).

    Example: learn from chosen (A) / rejected (B) pairs, then reward single responses (text, or
    (prompt, response)) and compare pairs given as (prompt, response_a, response_b):

    >>> from referee import Conversation, PairExample, RewardJudge
    >>> rows = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", "No idea."),
    ...         ("What is the capital of France?", "Paris is the capital of France.", "Not sure, look it up."),
    ...         ("How do I reverse a list in Python?", "Use reversed(xs) or the slice xs[::-1].", "No idea."),
    ...         ("Name a primary colour.", "Red is a primary colour.", "Not sure."),
    ...         ("How many legs has a spider?", "A spider has eight legs.", "No idea, sorry."),
    ...         ("Translate 'thank you' into French.", "'Thank you' is 'merci' in French.", "Not sure, sorry.")]
    >>> pairs = [PairExample(id=str(i), a=Conversation.from_text(prompt, good),
    ...                      b=Conversation.from_text(prompt, bad), label="A")
    ...          for i, (prompt, good, bad) in enumerate(rows)]
    >>> judge = RewardJudge(progress=False).fit(pairs)
    >>> good, bad = judge.reward(["Heat oil in a pan, crack the egg in and cook it for three minutes.",
    ...                           ("How do I fry an egg?", "No idea.")])
    >>> bool(good > 0 > bad)  # centred: the training responses average 0
    True
    >>> egg = ("How do I fry an egg?", "No idea.", "Heat oil in a pan and cook the egg for three minutes.")
    >>> judge.predict([egg]).tolist(), judge.predict_proba([egg]).round(2)  # p(A preferred)
    (['B'], array([0.]))
    """

    task = "reward"
    example_type = PairExample
    plain_input = "a PairExample, a (prompt, response_a, response_b) tuple of texts, or two Conversations"
    data_task = "pair"
    eval_data = ("pair",)
    columns = ("reward_a", "reward_b")  # on pairs; single conversations get one "reward" column
    label_name = "a label of A or B (ties and unlabelled pairs are dropped)"

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, margin: float = 0.0,
                 hidden: int = 256, dropout: float = 0.1, lr: float = 1e-3, epochs: int = 200, batch_size: int = 64,
                 patience: int = 10, C: float | None = None, max_chars: int = 4000, seed: int = 0, progress: bool = True,
                 finetune: dict | None = None,
                 encoder_backend: str | None = None, encoder_windows: int = 1):
        super().__init__(features, encoder, hidden=hidden, dropout=dropout, lr=lr, epochs=epochs,
                         batch_size=batch_size, patience=patience, C=C, max_chars=max_chars, seed=seed,
                         progress=progress, finetune=finetune,
                         encoder_backend=encoder_backend, encoder_windows=encoder_windows)
        self.margin = margin

    def from_plain(self, item, index: int):
        return pair_of(item, str(index))

    @staticmethod
    def labelled(example) -> bool:
        return example.label in ("A", "B")

    def _check_params(self):
        super()._check_params()
        if self.margin and self.features not in ("frozen", "finetune"):
            raise UserError(f"RewardJudge: margin needs features='frozen' or 'finetune' ({self.features} fits a "
                            "logistic regression)")

    # --- fit ------------------------------------------------------------------------------------

    def _conversations(self, examples):
        return [ex.chosen for ex in examples] + [ex.rejected for ex in examples]

    def _inputs(self, convs: list[Conversation]):
        return self._embed(convs), self._lengths(convs)

    def _linear_features(self, f, x):
        return sp.hstack([f, sp.csr_matrix(x)], format="csr")

    def _fit_linear(self, train):
        c = self._linear_features(*self._inputs([ex.chosen for ex in train]))
        r = self._linear_features(*self._inputs([ex.rejected for ex in train]))
        X = sp.vstack([c - r, r - c], format="csr")
        y = np.r_[np.ones(len(train), dtype=int), np.zeros(len(train), dtype=int)]
        lr = LogisticRegression(C=self.C_, fit_intercept=False, max_iter=2000).fit(X, y)
        self.w_ = lr.coef_[0].astype(np.float64)  # as saved: a loaded judge computes the same sums

    def _fit_stack(self, train):
        """Parts' out-of-fold rewards + length features -> one Bradley-Terry logistic without intercept
        on their differences, its C chosen by CV on the parts' own folds: the stack's reward of a
        response is a weighted sum of its parts' rewards and its length features, a reward like any other."""
        from referee.judges.capacity import GRID
        from referee.judges.stack import fit_stack

        self._fit_lengths(self._conversations(train))
        x = self._lengths([ex.a for ex in train]) - self._lengths([ex.b for ex in train])
        a_wins = np.array([ex.label == "A" for ex in train])

        def fit(X, rows, C):
            d = X[rows]
            lr = LogisticRegression(C=C, fit_intercept=False, max_iter=2000)
            lr.fit(np.vstack([d, -d]), np.r_[a_wins[rows], ~a_wins[rows]].astype(int))
            return lr.coef_[0].astype(np.float64)

        self.w_, found = fit_stack(
            self, train, "C", GRID, lambda r: np.hstack([np.stack([z[:, 0] - z[:, 1] for z in r], 1), x]), fit,
            predict=lambda w, X, rows: np.stack([X[rows] @ w, np.zeros(int(rows.sum()))], 1),
            loss=lambda r, rows: self._cv_loss(r, [ex for ex, keep in zip(train, rows) if keep]))
        self.C_ = found.chosen
        if found.oof is not None:
            self.oof_ = found

    def _cv_output(self, examples) -> np.ndarray:
        """(n, 2) rewards of A and B (before centring)."""
        return np.stack([self._raw([ex.a for ex in examples]), self._raw([ex.b for ex in examples])], 1)

    def _cv_loss(self, r, examples) -> float:
        """Bradley-Terry log loss of the labelled winner."""
        sign = np.where([ex.label == "A" for ex in examples], 1.0, -1.0)
        return float(np.logaddexp(0, -sign * (r[:, 0] - r[:, 1])).mean())

    def _oof_outputs(self, r, examples) -> dict:
        return {"r_a": r[:, 0], "r_b": r[:, 1]}

    def _build_head(self, dim, n_extra, hidden, dropout):
        from referee.judges.heads import RewardHead

        return RewardHead(dim, n_extra, hidden=hidden, dropout=dropout)

    def _fit_head(self, train, valid):
        from referee.judges.losses import bradley_terry

        fc, xc = (tensor(v) for v in self._inputs([ex.chosen for ex in train]))
        fr, xr = (tensor(v) for v in self._inputs([ex.rejected for ex in train]))
        vfc, vxc = (tensor(v) for v in self._inputs([ex.chosen for ex in valid]))
        vfr, vxr = (tensor(v) for v in self._inputs([ex.rejected for ex in valid]))
        self.head_args_ = dict(dim=fc.shape[1], n_extra=xc.shape[1], hidden=self.hidden, dropout=self.dropout)
        self.head_ = self._new_head()
        self._train_head(lambda i: bradley_terry(self.head_(fc[i], xc[i]), self.head_(fr[i], xr[i]), self.margin),
                         len(train), lambda: bradley_terry(self.head_(vfc, vxc), self.head_(vfr, vxr), self.margin))

    def _fit_finetune(self, train, valid, config):
        import torch

        from referee.encoders.transformer import TransformerRewardModel
        from referee.judges.heads import RewardPairModel
        from referee.judges.losses import bradley_terry

        reward = TransformerRewardModel.from_pretrained(config.encoder, max_length=config.max_length)
        self._fit_lengths(self._conversations(train))  # saved with every judge; the reward model reads none

        def collate(examples):
            texts = self._texts([ex.chosen for ex in examples] + [ex.rejected for ex in examples])
            return {"tokens": reward.tokenize(texts)}, torch.zeros(len(examples))  # the order is the label

        def loss_fn(outputs, targets):
            return bradley_terry(outputs[:, 0], outputs[:, 1], self.margin)

        self.encoder_ = reward
        self._finetune(RewardPairModel(reward), train, collate, loss_fn, config, valid=valid,
                       evaluator=BradleyTerryEvaluator(self.margin))

    def _after_fit(self, train, valid):
        self.offset_ = 0.0
        mean = float(self._raw(self._conversations(train)).mean())
        # A fine-tuned reward model takes the centring into its output bias (so it loads centred in TRL).
        self.offset_ = self.encoder_.center(mean) if self.features == "finetune" else mean

    # --- predict --------------------------------------------------------------------------------

    def _raw(self, convs: list[Conversation]) -> np.ndarray:
        if self.features == "finetune":
            return self.encoder_.reward(self._texts(convs))
        if self.features == "stack":
            parts = [part._raw(convs) for part in self.encoder_.parts]
            return np.hstack([np.stack(parts, 1), self._lengths(convs)]) @ self.w_
        f, x = self._inputs(convs)
        if self.is_linear():
            return np.asarray(self._linear_features(f, x) @ self.w_).ravel()
        import torch

        with torch.no_grad():
            return self.head_(tensor(f), tensor(x)).double().numpy()

    def reward(self, conversations) -> np.ndarray:
        """(n,) centred scalar rewards of each conversation's final response (plain text and (prompt,
        response) tuples are read as conversations)."""
        convs = [conversation_of(c) or c for c in conversations]
        if not convs:
            raise UserError("RewardJudge.reward: no conversations given")
        for i, c in enumerate(convs):
            if not isinstance(c, Conversation):
                raise UserError(f"RewardJudge.reward: item {i} is a {type(c).__name__}; expected a Conversation, "
                                "a response's text or a (prompt, response) tuple")
        return self._raw(convs) - self.offset_

    def predict_proba(self, examples) -> np.ndarray:
        """(n,) p(A preferred over B) = sigmoid(r(A) - r(B))."""
        examples = self._check_examples(examples, "predict_proba")
        r = self.reward([ex.a for ex in examples] + [ex.b for ex in examples])
        return sigmoid(r[: len(examples)] - r[len(examples):])

    def predict(self, examples) -> np.ndarray:
        """(n,) "A" or "B": the response with the higher reward."""
        return np.where(self.predict_proba(examples) >= 0.5, "A", "B")

    def validate(self, examples) -> dict[str, float]:
        """Pairwise accuracy: the chosen response rewarded above the rejected one (a tie counts half)."""
        return self._figures(self.outputs(examples), examples)

    def _figures(self, outputs, examples) -> dict[str, float]:
        a_wins = np.array([ex.label == "A" for ex in examples])
        chosen = np.where(a_wins, outputs["r_a"], outputs["r_b"])
        rejected = np.where(a_wins, outputs["r_b"], outputs["r_a"])
        return {"pairwise_accuracy": float(pairwise_accuracy(chosen, rejected)), "n": len(examples)}

    # --- what the code above asks ---------------------------------------------------------------

    def predict_table(self, examples) -> pd.DataFrame:
        """reward_a, reward_b on pairs; one reward per conversation on other data."""
        ids = [ex.id for ex in examples]
        if all(ex.task == "pair" for ex in examples):
            r = self.reward([ex.a for ex in examples] + [ex.b for ex in examples])
            return pd.DataFrame({"id": ids, "reward_a": r[: len(ids)], "reward_b": r[len(ids):]})
        for ex in examples:
            if ex.task == "pair":
                raise UserError(f"row id={ex.id!r}: the data mixes pairs and single conversations; predict one kind at a time")
        return pd.DataFrame({"id": ids, "reward": self.reward([ex.conversation for ex in examples])})

    def outputs(self, examples) -> dict:
        """r_a, r_b: the rewards of the two responses of each pair."""
        r = self.reward([ex.a for ex in examples] + [ex.b for ex in examples])
        return {"r_a": r[: len(examples)], "r_b": r[len(examples):]}

    # --- save / load ----------------------------------------------------------------------------

    def _state(self):
        state, tensors = super()._state()
        state.update(offset=self.offset_)
        if self.is_linear() or self.features == "stack":
            tensors["linear.w"] = np.asarray(self.w_, dtype=np.float64)
        return state, tensors

    def _set_state(self, state, tensors):
        super()._set_state(state, tensors)
        self.offset_ = state["offset"]
        if "linear.w" in tensors:
            self.w_ = tensors["linear.w"]


class BradleyTerryEvaluator:
    """The fine-tuning loop's evaluator: Bradley-Terry loss and pairwise accuracy (chosen scored
    above rejected) from (n, 2) rewards."""

    primary = "loss"
    greater_is_better = False

    def __init__(self, margin: float):
        self.margin = margin

    def __call__(self, outputs: torch.Tensor, targets) -> dict[str, float]:
        from referee.judges.losses import bradley_terry

        return {"loss": float(bradley_terry(outputs[:, 0], outputs[:, 1], self.margin)),
                "pairwise_accuracy": float(pairwise_accuracy(outputs[:, 0].numpy(), outputs[:, 1].numpy()))}
