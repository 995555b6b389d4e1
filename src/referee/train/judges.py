"""features="finetune" for each judge: a transformer trained end to end under the judge's own head.

`fit_judge(judge, train, valid)` is called by `Judge.fit` (the seam in `referee.judges.base`) with the
judge's checked, labelled examples. It builds the encoder and the head, the batches, the loss and the
validation metric, runs `referee.train.loop.train`, and leaves the judge exactly as its frozen-feature
fit would: `encoder_` (now fine-tuned, answering `transform` like a frozen encoder), `head_`,
`head_args_`, length statistics, and the task's own learned state. Prediction, calibration, save and
load are then the judge's usual code.

The fine-tuning settings come from the judge's `finetune` argument (a dict of `FinetuneConfig`
fields); the judge's `encoder`, `seed` and `progress` win over the dict.

    PairJudge(features="finetune", finetune={"epochs": 2, "lr": 3e-5}).fit(pairs)

The heads (`referee.judges.heads`) and losses are the frozen backend's; what changes is that the
embeddings come from `FinetuneEncoder.forward` inside the graph. Per task:
- pair: A and B encoded in one batch (siamese) or as (A, B) and (B, A) sequences (cross-encoder);
  the head sees both orders (swap augmentation); validated on the swap-averaged log loss;
- safety: masked BCE per category plus "any"; validated on the same loss;
- score: metric embeddings from the catalogue (fixed) or from the encoder on the metric names (so the
  names' embeddings are fine-tuned too, and recomputed with the final encoder afterwards);
- reward: an HF sequence classifier with one label (no length features: the saved folder must load
  in TRL as it is), Bradley-Terry loss; the centring goes into the output bias.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import torch
from torch import nn

from referee.encoders.finetune import FinetuneEncoder, FinetuneRewardModel
from referee.errors import UserError
from referee.judges.base import LENGTH_FEATURES
from referee.judges.heads import bradley_terry, masked_bce, regression_loss, soft_cross_entropy
from referee.train.config import ConfigError, FinetuneConfig
from referee.train.loop import train

SWAP = [1, 0, 2]  # [A, B, tie] after exchanging A and B (as in referee.judges.pair)


def finetune_config(judge) -> FinetuneConfig:
    """The judge's `finetune` dict as a checked config; `encoder`, `seed`, `progress` from the judge."""
    given = dict(judge.finetune or {})
    known = {f.name for f in fields(FinetuneConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"{type(judge).__name__}(finetune=...): unknown field(s) {unknown}; known: {sorted(known)}")
    given.update(seed=judge.seed, progress=judge.progress)
    if judge.encoder:
        given["encoder"] = judge.encoder
    return FinetuneConfig(**given)


def fit_judge(judge, train_examples: list, valid: list | None):
    config = finetune_config(judge)
    judge._seed()
    train_examples, valid = judge._split(train_examples, valid)
    return {"pair": _fit_pair, "safety": _fit_safety, "score": _fit_score, "reward": _fit_reward}[judge.task](
        judge, train_examples, valid, config)


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _warm_start(judge, head: nn.Module, train_examples, valid, encoder: str | None) -> None:
    """LP-FT (Kumar et al., 2022): fit the same head on frozen features of the same encoder, then
    start fine-tuning from it, so that a random head does not distort the pretrained features in
    the first steps. The frozen backend's embeddings are cached, so a rerun costs little."""
    params = dict(judge.get_params(), features="frozen", encoder=encoder, finetune=None, progress=False)
    frozen = type(judge)(**params).fit(train_examples, valid)
    head.load_state_dict(frozen.head_.state_dict())


def _finish(judge, encoder, head, result) -> None:
    judge.encoder_, judge.head_ = encoder, head
    encoder.eval()
    head.eval()
    judge.history_ = result.history
    judge.finetune_summary_ = result.summary()


# --- pair ----------------------------------------------------------------------------------------

class PairModel(nn.Module):
    """Both sides through one encoder, then the head in both orders: (n, 2, k) logits, [:, 1] for
    the swapped pair (still in swapped column order)."""

    def __init__(self, encoder: FinetuneEncoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        e = self.encoder(**tokens)  # (2n, d): the A sides, then the B sides
        e_a, e_b = e[: len(x_a)], e[len(x_a):]
        return torch.stack([self.head(e_a, e_b, x_a, x_b), self.head(e_b, e_a, x_b, x_a)], dim=1)


class PairEvaluator:
    """Log loss and accuracy of the swap-averaged prediction (what the judge will predict)."""

    primary = "log_loss"
    greater_is_better = False

    def __init__(self, swap: list[int]):
        self.swap = swap

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        z = (outputs[:, 0] + outputs[:, 1][:, self.swap]) / 2
        return {"log_loss": float(soft_cross_entropy(z, targets)),
                "accuracy": float((z.argmax(1) == targets.argmax(1)).float().mean())}


def _fit_pair(judge, train_examples, valid, config):
    valid = [ex for ex in valid if ex.target is not None]
    targets = np.asarray([ex.target for ex in train_examples])
    if targets[:, 2].sum() == len(train_examples):
        raise UserError("PairJudge.fit: every pair is a tie (a single class); a judge needs A or B wins too")
    judge.classes_ = ["A", "B", "tie"] if targets[:, 2].sum() > 0 else ["A", "B"]
    k = len(judge.classes_)
    swap = SWAP[:k]
    encoder = FinetuneEncoder.from_pretrained(config.encoder, max_length=config.max_length,
                                              cross_encoder=config.cross_encoder)
    judge._fit_lengths([ex.a for ex in train_examples] + [ex.b for ex in train_examples])
    judge.head_args_ = dict(dim=encoder.dim, n_extra=len(LENGTH_FEATURES), n_classes=k, hidden=judge.hidden,
                            dropout=judge.dropout)
    head = judge._build_head(**judge.head_args_)
    if config.warm_start:
        _warm_start(judge, head, train_examples, valid, config.encoder)

    def collate(examples):
        a, b = [ex.a for ex in examples], [ex.b for ex in examples]
        text_a, text_b = judge._texts(a), judge._texts(b)
        tokens = (encoder.tokenize(text_a + text_b, text_b + text_a) if encoder.cross_encoder
                  else encoder.tokenize(text_a + text_b))
        inputs = {"tokens": tokens, "x_a": _tensor(judge._lengths(a)), "x_b": _tensor(judge._lengths(b))}
        return inputs, _tensor(judge._targets(examples))

    def loss_fn(outputs, targets):
        loss = soft_cross_entropy(outputs[:, 0], targets)
        if judge.swap_augment:
            loss = (loss + soft_cross_entropy(outputs[:, 1], targets[:, swap])) / 2
        return loss

    result = train(PairModel(encoder, head), train_examples, collate, loss_fn, config, valid_data=valid,
                   evaluator=PairEvaluator(swap), desc="fine-tuning pair judge")
    _finish(judge, encoder, head, result)
    judge.temperature_ = 1.0
    judge.validation_ = judge._validation(valid)
    return judge


# --- safety --------------------------------------------------------------------------------------

class TextModel(nn.Module):
    """One text per example: head(encoder(text), extra) -> whatever the head gives."""

    def __init__(self, encoder: FinetuneEncoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, extra: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(**tokens), extra)


def _fit_safety(judge, train_examples, valid, config):
    judge.categories_ = sorted({cat for ex in train_examples for cat in ex.labels})
    encoder = FinetuneEncoder.from_pretrained(config.encoder, max_length=config.max_length)
    judge._fit_lengths([ex.conversation for ex in train_examples])
    judge.head_args_ = dict(dim=encoder.dim, n_extra=len(LENGTH_FEATURES), n_outputs=len(judge.categories_) + 1,
                            hidden=judge.hidden, dropout=judge.dropout)
    head = judge._build_head(**judge.head_args_)
    if config.warm_start:
        _warm_start(judge, head, train_examples, valid, config.encoder)

    def collate(examples):
        convs = [ex.conversation for ex in examples]
        inputs = {"tokens": encoder.tokenize(judge._texts(convs)), "extra": _tensor(judge._lengths(convs))}
        return inputs, _tensor(judge._labels(examples))  # (n, C + 1), NaN = unknown

    result = train(TextModel(encoder, head), train_examples, collate, masked_bce, config, valid_data=valid,
                   desc="fine-tuning safety judge")
    _finish(judge, encoder, head, result)
    judge.temperature_ = 1.0
    judge._fit_threshold(valid)
    judge.validation_ = judge._validation(valid)
    return judge


# --- score ---------------------------------------------------------------------------------------

class ScoreModel(nn.Module):
    """head(encoder(text), metric embedding); the metric embedding is either given (a catalogue) or
    the encoder's own embedding of the metric's name (`metric_tokens`, one row per distinct metric
    in the batch, and `metric_index` (n,) choosing each example's row)."""

    def __init__(self, encoder: FinetuneEncoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, metric_vectors: torch.Tensor | None = None, metric_tokens: dict | None = None,
                metric_index: torch.Tensor | None = None) -> torch.Tensor:
        if metric_vectors is None:
            metric_vectors = self.encoder(**metric_tokens)[metric_index]
        return self.head(self.encoder(**tokens), metric_vectors)


def _fit_score(judge, train_examples, valid, config):
    from referee.judges.score import balance_weights, metric_text

    valid = [ex for ex in valid if ex.score is not None]
    judge.metrics_ = sorted({ex.metric for ex in train_examples})
    encoder = FinetuneEncoder.from_pretrained(config.encoder, max_length=config.max_length)
    judge._fit_lengths([ex.conversation for ex in train_examples])
    if judge.catalogue:
        judge._fit_metric_embeddings()  # the catalogue's fixed vectors
        metric_dim = judge.metric_embeddings_.shape[1]
    else:
        judge.metric_names_ = list(judge.metrics_)
        metric_dim = encoder.dim
    judge.head_args_ = dict(dim=encoder.dim, metric_dim=metric_dim, kind=judge.head, hidden=judge.hidden,
                            dropout=judge.dropout)
    head = judge._build_head(**judge.head_args_)
    if config.warm_start:
        _warm_start(judge, head, train_examples, valid, config.encoder)
    y = judge._targets(train_examples)
    weights = balance_weights(y) if judge.reweight else np.ones(len(y))

    def collate(rows):
        examples, w = [r[0] for r in rows], [r[1] for r in rows]
        inputs = {"tokens": encoder.tokenize(judge._texts([ex.conversation for ex in examples]))}
        if judge.catalogue:
            inputs["metric_vectors"] = _tensor(judge._metric_vectors(examples))
        else:
            names = sorted({ex.metric for ex in examples})
            inputs["metric_tokens"] = encoder.tokenize([metric_text(m) for m in names])
            inputs["metric_index"] = torch.tensor([names.index(ex.metric) for ex in examples])
        return inputs, (_tensor(judge._targets(examples)), _tensor(w))

    def loss_fn(outputs, targets):
        return regression_loss(outputs, targets[0], targets[1], judge.loss)

    result = train(ScoreModel(encoder, head), list(zip(train_examples, weights)), collate, loss_fn, config,
                   valid_data=[(ex, 1.0) for ex in valid], desc="fine-tuning score judge")
    _finish(judge, encoder, head, result)
    if not judge.catalogue:
        judge._fit_metric_embeddings()  # the names' embeddings as the fine-tuned encoder now gives them
    judge.validation_ = judge._validation(valid)
    return judge


# --- reward --------------------------------------------------------------------------------------

class RewardPairModel(nn.Module):
    """Chosen and rejected through one sequence classifier: (n, 2) rewards [chosen, rejected]."""

    def __init__(self, reward: FinetuneRewardModel):
        super().__init__()
        self.reward = reward

    def forward(self, tokens: dict) -> torch.Tensor:
        r = self.reward(**tokens)
        return torch.stack([r[: len(r) // 2], r[len(r) // 2:]], dim=1)


class RewardEvaluator:
    """Bradley-Terry loss and pairwise accuracy (chosen scored above rejected)."""

    primary = "loss"
    greater_is_better = False

    def __init__(self, margin: float):
        self.margin = margin

    def __call__(self, outputs: torch.Tensor, targets) -> dict[str, float]:
        return {"loss": float(bradley_terry(outputs[:, 0], outputs[:, 1], self.margin)),
                "pairwise_accuracy": float((outputs[:, 0] > outputs[:, 1]).float().mean())}


def _fit_reward(judge, train_examples, valid, config):
    reward = FinetuneRewardModel.from_pretrained(config.encoder, max_length=config.max_length)
    convs = [ex.chosen for ex in train_examples] + [ex.rejected for ex in train_examples]
    judge._fit_lengths(convs)  # saved with every judge; the reward model itself reads no length features

    def collate(examples):
        texts = judge._texts([ex.chosen for ex in examples] + [ex.rejected for ex in examples])
        return {"tokens": reward.tokenize(texts)}, torch.zeros(len(examples))  # the order is the label

    def loss_fn(outputs, targets):
        return bradley_terry(outputs[:, 0], outputs[:, 1], judge.margin)

    result = train(RewardPairModel(reward), train_examples, collate, loss_fn, config, valid_data=valid,
                   evaluator=RewardEvaluator(judge.margin), desc="fine-tuning reward model")
    reward.eval()
    judge.encoder_ = reward
    judge.history_ = result.history
    judge.finetune_summary_ = result.summary()
    judge.offset_ = reward.center(float(reward.reward(judge._texts(convs)).mean()))
    judge.validation_ = judge._validation(valid)
    return judge
