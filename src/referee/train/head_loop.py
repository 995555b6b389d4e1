"""The short training loop of a small torch head over precomputed features (frozen embeddings):
Adam on mini-batches, early stopping on a validation loss, the best weights kept. It knows no judge:
it gets a loss over row indices and a validation loss."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from referee.progress import bar as progress_bar


@dataclass
class History:
    """Per-epoch mean training loss and validation loss; the epoch whose weights were kept."""

    train: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def rows(self) -> list[dict]:
        """One row per epoch, {"epoch", "loss", "valid_loss"}: the shape of the fine-tuning loop's history."""
        return [{"epoch": i + 1, "loss": t, "valid_loss": v} for i, (t, v) in enumerate(zip(self.train, self.valid))]


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
    bar = progress_bar(range(epochs), desc=desc, unit="epoch", enabled=progress, leave=False)
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
