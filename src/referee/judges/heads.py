"""The judges' heads: small torch modules over feature tensors (frozen embeddings, or the pooled
output of a fine-tuned backbone, which puts its transformer under these same heads), their losses,
and the short training loop used over frozen features.

Shapes: n = batch, d = embedding size, m = extra (length) features per text.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


def mlp_block(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> LayerNorm -> Dropout."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.LayerNorm(d_out), nn.Dropout(dropout))


class PairHead(nn.Module):
    """(e_a, e_b, x_a, x_b) -> (n, k) logits over [A, B(, tie)].

    Input features [e_a - e_b, e_a * e_b, x_a - x_b, |x_a - x_b|]: the difference says which is
    better, the product and the absolute length gap say how alike they are (ties)."""

    def __init__(self, dim: int, n_extra: int, n_classes: int = 3, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        d_in = 2 * dim + 2 * n_extra
        self.net = nn.Linear(d_in, n_classes) if hidden == 0 else nn.Sequential(
            mlp_block(d_in, hidden, dropout), nn.Linear(hidden, n_classes))

    def forward(self, e_a, e_b, x_a, x_b):
        return self.net(torch.cat([e_a - e_b, e_a * e_b, x_a - x_b, (x_a - x_b).abs()], dim=-1))


class ScoreHead(nn.Module):
    """(text embedding (n, d), metric embedding (n, d_m)) -> (n,) score in normalised [0, 1] space.

    concat:    text -> 256, metric -> 256, concat -> 128 -> 1.
    two-tower: both projected to 256, cosine similarity -> small MLP -> 1."""

    def __init__(self, dim: int, metric_dim: int, kind: str = "concat", hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.kind = kind
        self.text = mlp_block(dim, hidden, dropout)
        self.metric = mlp_block(metric_dim, hidden, dropout)
        if kind == "concat":
            self.out = nn.Sequential(mlp_block(2 * hidden, 128, dropout), nn.Linear(128, 1))
        elif kind == "two-tower":
            self.out = nn.Sequential(nn.Linear(1, 16), nn.GELU(), nn.Linear(16, 1))
        else:
            raise ValueError(f"ScoreHead: kind must be 'concat' or 'two-tower', got {kind!r}")

    def forward(self, e_text, e_metric):
        t, m = self.text(e_text), self.metric(e_metric)
        if self.kind == "concat":
            return self.out(torch.cat([t, m], dim=-1)).squeeze(-1)
        return self.out(F.cosine_similarity(t, m, dim=-1).unsqueeze(-1)).squeeze(-1)


class SafetyHead(nn.Module):
    """(e (n, d), x (n, m)) -> (n, C + 1) logits, one per category, the last for "any"."""

    def __init__(self, dim: int, n_extra: int, n_outputs: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        d_in = dim + n_extra
        self.net = nn.Linear(d_in, n_outputs) if hidden == 0 else nn.Sequential(
            mlp_block(d_in, hidden, dropout), nn.Linear(hidden, n_outputs))

    def forward(self, e, x):
        return self.net(torch.cat([e, x], dim=-1))


class RewardHead(nn.Module):
    """(e (n, d), x (n, m)) -> (n,) scalar reward."""

    def __init__(self, dim: int, n_extra: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        d_in = dim + n_extra
        self.net = nn.Linear(d_in, 1) if hidden == 0 else nn.Sequential(
            mlp_block(d_in, hidden, dropout), nn.Linear(hidden, 1))

    def forward(self, e, x):
        return self.net(torch.cat([e, x], dim=-1)).squeeze(-1)


# --- losses ----------------------------------------------------------------------------------

def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against distributions. logits, target: (n, k); weight: (n,) or None."""
    if logits.shape != target.shape:
        raise ValueError(f"soft_cross_entropy: logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1)
    return loss.mean() if weight is None else (loss * weight).sum() / weight.sum()


def masked_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy where target is NaN for unknown labels. logits, target: (n, k)."""
    if logits.shape != target.shape:
        raise ValueError(f"masked_bce: logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], target[known])


def bradley_terry(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected - margin), averaged. Both (n,)."""
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"bradley_terry: chosen {tuple(r_chosen.shape)} and rejected {tuple(r_rejected.shape)} differ")
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


def regression_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Weighted MSE or Huber (delta 0.1 in normalised [0, 1] space). All (n,)."""
    if pred.shape != target.shape:
        raise ValueError(f"regression_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if kind == "huber":
        loss = F.huber_loss(pred, target, reduction="none", delta=0.1)
    else:
        loss = (pred - target) ** 2
    return (loss * weight).sum() / weight.sum()


# --- training over precomputed features -------------------------------------------------------

@dataclass
class History:
    """Per-epoch mean training loss and validation loss; the epoch whose weights were kept."""

    train: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    best_epoch: int = 0


def train_head(head: nn.Module, train_loss, n_train: int, valid_loss, *, lr: float = 1e-3,
               weight_decay: float = 1e-4, epochs: int = 200, batch_size: int = 64, patience: int = 10,
               seed: int = 0, progress: bool = True, desc: str = "training") -> History:
    """Adam on mini-batches with early stopping on the validation loss; the best weights are kept.

    train_loss(idx: LongTensor) -> scalar loss on those training rows; valid_loss() -> float.
    Features are precomputed, so an epoch is cheap: a few seconds on CPU for thousands of rows.
    """
    # A head this small runs fastest on one thread: more only add synchronisation (and on a busy
    # machine, waiting for cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_head(head, train_loss, n_train, valid_loss, lr=lr, weight_decay=weight_decay, epochs=epochs,
                           batch_size=batch_size, patience=patience, seed=seed, progress=progress, desc=desc)
    finally:
        torch.set_num_threads(threads)


def _train_head(head, train_loss, n_train, valid_loss, *, lr, weight_decay, epochs, batch_size, patience, seed,
                progress, desc) -> History:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    best, best_state, bad = math.inf, copy.deepcopy(head.state_dict()), 0
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress or None, leave=False)
    for epoch in bar:
        head.train()
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for start in range(0, n_train, batch_size):
            idx = order[start:start + batch_size]
            loss = train_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        head.eval()
        with torch.no_grad():
            v = float(valid_loss())
        history.train.append(total / n_train)
        history.valid.append(v)
        bar.set_postfix(train=f"{history.train[-1]:.4f}", valid=f"{v:.4f}")
        if v < best - 1e-6:
            best, best_state, bad, history.best_epoch = v, copy.deepcopy(head.state_dict()), 0, epoch
        else:
            bad += 1
            if bad >= patience:
                break
    bar.close()
    head.load_state_dict(best_state)
    head.eval()
    return history


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
