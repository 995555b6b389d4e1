"""Temperature scaling (Guo et al., 2017): one scalar T that divides the logits, fitted on
validation data to minimise log loss. It changes confidence, never the ranking of classes."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T > 0 minimising the cross-entropy of softmax(logits / T) against `targets`.

    logits: (n, k); targets: (n, k) distributions (one-hot or soft), or (n,) class indices.
    For binary sigmoid outputs pass logits as (n, 2) columns [0, z].

    >>> z = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> y = np.array([0, 1, 0, 1])  # over-confident: the model is right 3 times out of 4
    >>> round(fit_temperature(z, y), 2)
    3.64
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    if targets.ndim == 1:
        targets = np.eye(logits.shape[1])[targets.astype(int)]
    if logits.shape != targets.shape:
        raise ValueError(f"fit_temperature: logits {logits.shape} and targets {targets.shape} differ")

    def loss(log_t: float) -> float:
        return float(-(targets * log_softmax(logits / np.exp(log_t), axis=1)).sum(axis=1).mean())

    # Search log T so that T stays positive; [1/20, 20] covers every sane model.
    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))
