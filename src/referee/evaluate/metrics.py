"""Pure metric functions, each with a worked example.

Every function takes numpy arrays whose *last* axis (or second to last, for class probabilities)
runs over examples, and also accepts a leading batch axis: `rmse(y[idx], p[idx])` with `idx` of shape
(B, n) returns B values at once. That is what makes `bootstrap_ci` fast, and it is why a few metrics
that scikit-learn has (ROC-AUC, average precision) are written here again: sklearn computes one
sample at a time, and a 95% interval needs a thousand resamples per number. The tests check each
against sklearn.

Shapes: `proba` (..., n, k) class probabilities; `labels` (..., n) class indices, or (..., n, k)
target distributions (soft labels); `y_true`, `y_pred`, `scores` (..., n).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata

EPS = 1e-15


def _targets(labels, k: int) -> np.ndarray:
    """(..., n) class indices or (..., n, k) distributions -> (..., n, k) distributions."""
    labels = np.asarray(labels)
    if labels.ndim >= 1 and labels.shape[-1] == k and labels.dtype.kind == "f":
        return labels
    return np.eye(k)[labels.astype(int)]


# --- score judges: numbers against numbers --------------------------------------------------------

def rmse(y_true, y_pred) -> np.ndarray:
    """Root mean squared error.

    >>> round(float(rmse([0, 5, 10], [1, 5, 7])), 3)   # sqrt((1 + 0 + 9) / 3)
    1.826
    """
    d = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return np.sqrt((d ** 2).mean(axis=-1))


def mae(y_true, y_pred) -> np.ndarray:
    """Mean absolute error.

    >>> float(mae([0, 5, 10], [1, 5, 7]))   # (1 + 0 + 3) / 3
    1.3333333333333333
    """
    return np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float)).mean(axis=-1)


def pearson(x, y) -> np.ndarray:
    """Pearson correlation; NaN when either side is constant.

    >>> round(float(pearson([1, 2, 3, 4], [1, 3, 2, 4])), 3)   # cov 1.0 / var 1.25
    0.8
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt((x ** 2).sum(axis=-1) * (y ** 2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=-1) / np.where(denom > 0, denom, 1), np.nan)


def spearman(x, y) -> np.ndarray:
    """Spearman rank correlation: Pearson of the (tie-averaged) ranks.

    >>> round(float(spearman([1, 2, 3, 4], [10, 30, 20, 40])), 3)
    0.8
    >>> float(spearman([1, 2, 3], [1, 4, 9]))   # any increasing relation is 1
    1.0
    """
    return pearson(rankdata(x, axis=-1), rankdata(y, axis=-1))


# --- pair judges: probabilities over (A, B, tie) ------------------------------------------------

def log_loss(proba, labels) -> np.ndarray:
    """Mean cross-entropy of the predicted distribution against the label (index or distribution).

    >>> round(float(log_loss([[.5, .3, .2]], [0])), 3)   # -ln 0.5
    0.693
    >>> round(float(log_loss([[.5, .3, .2]], [[.5, .5, 0.]])), 3)   # -(.5 ln .5 + .5 ln .3)
    0.949
    """
    proba = np.asarray(proba, float)
    target = _targets(labels, proba.shape[-1])
    return -(target * np.log(np.clip(proba, EPS, 1))).sum(axis=-1).mean(axis=-1)


def accuracy(proba, labels, *, three_way: bool | None = None) -> np.ndarray:
    """Share of rows whose most probable class is the label.

    Three-way (A, B, tie) when the labels hold ties; otherwise two-way: the tie mass is ignored and
    the decision is A or B, whichever is more probable. `three_way` fixes the mode (the evaluator
    sets it once for the whole data set, so that bootstrap resamples agree).

    >>> float(accuracy([[.3, .2, .5], [.1, .6, .3]], [0, 1]))   # no ties: row 1 picks A over B
    1.0
    >>> float(accuracy([[.3, .2, .5], [.1, .6, .3]], [0, 1], three_way=True))   # row 1 picks tie
    0.5
    """
    proba = np.asarray(proba, float)
    labels = np.asarray(labels)
    if three_way is None:
        three_way = bool((labels == 2).any())
    decision = proba.argmax(axis=-1) if three_way else proba[..., :2].argmax(axis=-1)
    return (decision == labels).mean(axis=-1)


def brier(proba, labels) -> np.ndarray:
    """Multi-class Brier score: mean over rows of the squared distance to the one-hot label.

    >>> round(float(brier([[.5, .3, .2]], [0])), 2)   # .25 + .09 + .04
    0.38
    """
    proba = np.asarray(proba, float)
    return ((proba - _targets(labels, proba.shape[-1])) ** 2).sum(axis=-1).mean(axis=-1)


def reliability_bins(confidence, correct, n_bins: int = 10):
    """Equal-width confidence bins: (bin edges, mean confidence, accuracy, count) per bin.

    Used for the reliability diagram and for `ece`. Empty bins have NaN confidence and accuracy.

    >>> edges, conf, acc, count = reliability_bins([.95, .9, .6], [1, 0, 1], n_bins=4)
    >>> conf.round(3).tolist(), acc.tolist(), count.tolist()
    ([nan, nan, 0.6, 0.925], [nan, nan, 1.0, 0.5], [0, 0, 1, 2])
    """
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(which, confidence, minlength=n_bins) / count
        acc = np.bincount(which, correct, minlength=n_bins) / count
    return edges, conf, acc, count


def ece(proba, labels, n_bins: int = 10) -> np.ndarray:
    """Expected calibration error of the top-class confidence: sum over equal-width bins of
    (bin share) * |accuracy - mean confidence|.

    >>> round(float(ece([[.95, .05], [.9, .1], [.6, .4]], [0, 1, 0], n_bins=4)), 4)   # (.4 + 2*.425)/3
    0.4167
    """
    proba = np.asarray(proba, float)
    labels = np.asarray(labels)
    confidence = proba.max(axis=-1)
    correct = (proba.argmax(axis=-1) == labels).astype(float)
    # Batched binning: offset each resample's bins so one bincount serves all of them.
    batch = confidence.shape[:-1]
    n = confidence.shape[-1]
    flat_conf = confidence.reshape(-1, n)
    flat_corr = correct.reshape(-1, n)
    which = np.clip(np.digitize(flat_conf, np.linspace(0, 1, n_bins + 1)[1:-1]), 0, n_bins - 1)
    which = which + n_bins * np.arange(len(flat_conf))[:, None]
    size = n_bins * len(flat_conf)
    gap = np.bincount(which.ravel(), (flat_conf - flat_corr).ravel(), minlength=size)
    return (np.abs(gap.reshape(-1, n_bins)).sum(axis=-1) / n).reshape(batch)


def ece_floor(proba, draws: int = 200, seed: int = 0) -> float:
    """The ECE that a perfectly calibrated judge with these probabilities would show on this many rows:
    the mean ECE over labels drawn from `proba` itself. ECE measured near it is sampling noise (ten
    bins of a few hundred rows are noisy); only what lies above it is miscalibration.

    >>> p = np.tile([[0.7, 0.3]], (100, 1))
    >>> 0.02 < ece_floor(p) < 0.06, ece_floor(np.tile(p, (100, 1))) < 0.01
    (True, True)
    """
    proba = np.asarray(proba, float)
    rng = np.random.default_rng(seed)
    cumulative = proba.cumsum(1) / proba.sum(1, keepdims=True)
    drawn = np.minimum((rng.random((draws, len(proba), 1)) > cumulative).sum(-1), proba.shape[1] - 1)  # (draws, n)
    return float(np.mean([ece(proba, labels) for labels in drawn]))


def swap_consistency(proba, proba_swapped) -> np.ndarray:
    """Position bias, part 1: share of pairs whose decision survives exchanging A and B.

    `proba` is the judge on (A, B) and `proba_swapped` on (B, A), both *without* test-time swap
    averaging. A decision survives when A wins in the first order and B in the second (same answer),
    or a tie both times.

    >>> p  = [[.7, .2, .1], [.6, .3, .1]]
    >>> ps = [[.2, .7, .1], [.6, .3, .1]]   # row 2: "first one wins" whatever the order
    >>> float(swap_consistency(p, ps))
    0.5
    """
    decision = np.asarray(proba, float).argmax(axis=-1)
    swapped = np.asarray(proba_swapped, float).argmax(axis=-1)
    unswapped = np.array([1, 0, 2])[swapped]  # the swapped run's decision in the original order
    return (decision == unswapped).mean(axis=-1)


def first_position_preference(proba, proba_swapped) -> np.ndarray:
    """Position bias, part 2: mean p(first) - p(second) over both orders of every pair.

    Content cancels out (each response appears once in each position), so an unbiased judge scores
    0; a positive value is a preference for whichever response is shown first.

    >>> round(float(first_position_preference([[.7, .2, .1]], [[.5, .4, .1]])), 3)   # (.5 + .1) / 2
    0.3
    """
    p = np.asarray(proba, float)
    ps = np.asarray(proba_swapped, float)
    return ((p[..., 0] - p[..., 1]).mean(axis=-1) + (ps[..., 0] - ps[..., 1]).mean(axis=-1)) / 2


def length_bias(preference, length_difference) -> np.ndarray:
    """How strongly a preference follows the length difference: Spearman of p(A) - p(B) (or a human
    label coded +1 A, -1 B, 0 tie) against len(A) - len(B). 0 = blind to length, 1 = longer wins.

    >>> float(length_bias([.8, -.4, .1], [120, -30, 5]))
    1.0
    """
    return spearman(preference, length_difference)


# --- safety judges: binary labels against scores ------------------------------------------------

def roc_auc(y_true, scores) -> np.ndarray:
    """Area under the ROC curve (Mann-Whitney U with tie-averaged ranks, equal to sklearn's
    `roc_auc_score`); NaN when only one class is present.

    >>> float(roc_auc([0, 0, 1, 1], [.1, .4, .35, .8]))
    0.75
    """
    y = np.asarray(y_true).astype(bool)
    ranks = rankdata(np.asarray(scores, float), axis=-1)
    n_pos = y.sum(axis=-1)
    n_neg = y.shape[-1] - n_pos
    u = (ranks * y).sum(axis=-1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / np.maximum(n_pos * n_neg, 1), np.nan)


def pr_auc(y_true, scores) -> np.ndarray:
    """Average precision (area under the precision-recall curve, as sklearn's
    `average_precision_score`: precision at each threshold weighted by the recall it adds; tied
    scores share one threshold). NaN without positives.

    >>> round(float(pr_auc([0, 0, 1, 1], [.1, .4, .35, .8])), 4)   # (1/1 + 2/3) / 2
    0.8333
    """
    y = np.asarray(y_true).astype(float)
    s = np.asarray(scores, float)
    order = np.argsort(-s, axis=-1, kind="stable")
    s = np.take_along_axis(s, order, axis=-1)
    y = np.take_along_axis(y, order, axis=-1)
    n = s.shape[-1]
    position = np.arange(n)
    # Last position of each run of tied scores: every member of the run is cut at that threshold.
    is_last = np.ones(s.shape, bool)
    is_last[..., :-1] = s[..., :-1] != s[..., 1:]
    end = np.minimum.accumulate(np.where(is_last, position, n)[..., ::-1], axis=-1)[..., ::-1]
    true_pos = np.cumsum(y, axis=-1)
    precision = np.take_along_axis(true_pos, end, axis=-1) / (end + 1)
    n_pos = y.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, (precision * y).sum(axis=-1) / np.maximum(n_pos, 1), np.nan)


def f1(y_true, y_pred) -> np.ndarray:
    """F1 of the positive class (unsafe) for hard decisions; 0 when there is nothing to find or flag.

    >>> round(float(f1([1, 1, 0, 0], [1, 0, 1, 0])), 3)   # tp 1, fp 1, fn 1 -> 2/4
    0.5
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = (y & p).sum(axis=-1)
    wrong = (y ^ p).sum(axis=-1)
    denom = 2 * tp + wrong
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def false_positive_rate(y_true, y_pred) -> np.ndarray:
    """Share of negatives (safe) flagged positive (unsafe); NaN without negatives.

    >>> float(false_positive_rate([1, 0, 0, 0], [1, 1, 0, 0]))
    0.3333333333333333
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    n_neg = (~y).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_neg > 0, (p & ~y).sum(axis=-1) / np.maximum(n_neg, 1), np.nan)


def over_refusal(flagged, is_safe) -> np.ndarray:
    """Share of prompts labelled safe that the judge flags unsafe (XSTest's "exaggerated safety":
    a system guarded by this judge would refuse them). The false-positive rate, named for prompts.

    >>> float(over_refusal([True, False, True, False], [True, True, False, True]))   # 1 of 3 safe
    0.3333333333333333
    """
    return false_positive_rate(~np.asarray(is_safe).astype(bool), flagged)


# --- reward judges: scalars for chosen and rejected ----------------------------------------------

def pairwise_accuracy(reward_chosen, reward_rejected) -> np.ndarray:
    """Share of pairs where the chosen response gets the higher reward (an exact tie counts half).

    >>> float(pairwise_accuracy([2., 1., 0.], [1., 3., 0.]))   # (1 + 0 + .5) / 3
    0.5
    """
    margin = np.asarray(reward_chosen, float) - np.asarray(reward_rejected, float)
    return ((margin > 0) + 0.5 * (margin == 0)).mean(axis=-1)


def margin_summary(reward_chosen, reward_rejected) -> dict[str, float]:
    """The distribution of reward(chosen) - reward(rejected): mean, quartiles, share negative.

    >>> margin_summary([2., 1., 0., 5.], [1., 3., 0., 1.])
    {'margin_mean': 0.75, 'margin_p25': -0.5, 'margin_median': 0.5, 'margin_p75': 1.75, 'margin_negative': 0.25}
    """
    margin = np.asarray(reward_chosen, float) - np.asarray(reward_rejected, float)
    p25, p50, p75 = np.percentile(margin, [25, 50, 75])
    return {
        "margin_mean": float(margin.mean()), "margin_p25": float(p25), "margin_median": float(p50),
        "margin_p75": float(p75), "margin_negative": float((margin < 0).mean()),
    }


# --- confidence intervals -----------------------------------------------------------------------

def bootstrap_ci(statistic: Callable[..., np.ndarray], *arrays, n_boot: int = 1000, level: float = 0.95,
                 seed: int | None = 0, chunk: int = 200) -> tuple[float, float]:
    """Percentile bootstrap interval for `statistic(*arrays)`, resampling rows (axis 0 of every
    array) together. `statistic` must accept a leading batch axis, as every metric here does.

    Resamples where the statistic is undefined (e.g. one class only, for ROC-AUC) are left out.

    >>> y = np.r_[np.zeros(50), np.ones(50)]
    >>> lo, hi = bootstrap_ci(lambda a: a.mean(axis=-1), y, seed=0)
    >>> 0.39 < lo < 0.5 < hi < 0.61
    True
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_ci: arrays have different lengths {[len(a) for a in arrays]}")
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = []
    # Chunks keep memory at chunk * n * k floats however many resamples are drawn.
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        values.append(np.asarray(statistic(*(a[idx] for a in arrays)), float))
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return (float(lo), float(hi))
