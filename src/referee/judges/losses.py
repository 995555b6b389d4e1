"""The judges' losses, separate from the models: each checks the shapes it is given and says what it
expected. Shapes: n = batch, k = classes or outputs.

    >>> import torch
    >>> round(float(bradley_terry(torch.tensor([1.0]), torch.tensor([0.0]))), 4)   # -log sigmoid(1)
    0.3133
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
