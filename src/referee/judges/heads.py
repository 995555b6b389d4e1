"""The judges' heads: small torch modules over feature tensors (frozen embeddings, or the pooled
output of a fine-tuned backbone, which puts its transformer under these same heads). Losses are in
`losses.py`, the training loops in `referee.train`.

Shapes: n = batch, d = embedding size, m = extra (length) features per text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


class TextModel(nn.Module):
    """One text per example, fine-tuned end to end: head(encoder(text), extra) -> what the head gives."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, extra: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(**tokens), extra)


class PairModel(nn.Module):
    """Both sides through one encoder, then the head in both orders: (n, 2, k) logits, [:, 1] for
    the swapped pair (still in swapped column order)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        e = self.encoder(**tokens)  # (2n, d): the A sides, then the B sides
        e_a, e_b = e[: len(x_a)], e[len(x_a):]
        return torch.stack([self.head(e_a, e_b, x_a, x_b), self.head(e_b, e_a, x_b, x_a)], dim=1)


class ScoreModel(nn.Module):
    """head(encoder(text), metric embedding); the metric embedding is either given (a catalogue) or
    the encoder's own embedding of the metric's name (`metric_tokens`, one row per distinct metric
    in the batch, and `metric_index` (n,) choosing each example's row)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, tokens: dict, metric_vectors: torch.Tensor | None = None, metric_tokens: dict | None = None,
                metric_index: torch.Tensor | None = None) -> torch.Tensor:
        if metric_vectors is None:
            metric_vectors = self.encoder(**metric_tokens)[metric_index]
        return self.head(self.encoder(**tokens), metric_vectors)


class RewardPairModel(nn.Module):
    """Chosen and rejected through one sequence classifier: (n, 2) rewards [chosen, rejected]."""

    def __init__(self, reward: nn.Module):
        super().__init__()
        self.reward = reward

    def forward(self, tokens: dict) -> torch.Tensor:
        r = self.reward(**tokens)
        return torch.stack([r[: len(r) // 2], r[len(r) // 2:]], dim=1)
