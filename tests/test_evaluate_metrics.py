"""Metric functions: hand-worked numbers, agreement with sklearn/scipy, the batch axis, and the
bootstrap interval."""

import doctest

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from referee.evaluate import calibration, metrics as M


def test_docstring_examples_run():
    for module in (M, calibration):
        failed, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert tried > 0 and failed == 0, module.__name__


def test_pair_metrics_by_hand():
    """Two pairs, labels A and tie.
    proba row 1 = (.6, .3, .1), label A:   -ln .6 = .5108; Brier (.4² + .3² + .1²) = .26
    proba row 2 = (.2, .3, .5), label tie: -ln .5 = .6931; Brier (.2² + .3² + .5²) = .38
    log loss = (.5108 + .6931) / 2 = .6020; Brier = .32; three-way accuracy 2/2."""
    p = np.array([[.6, .3, .1], [.2, .3, .5]])
    y = np.array([0, 2])
    assert M.log_loss(p, y) == pytest.approx(0.60198, abs=1e-5)
    assert M.brier(p, y) == pytest.approx(0.32)
    assert M.accuracy(p, y) == 1.0
    # Without ties in the labels, accuracy is two-way: row 2 decides B (.3 > .2).
    assert M.accuracy(p, np.array([0, 1])) == 1.0
    assert M.accuracy(p, np.array([0, 0])) == 0.5


def test_against_sklearn_and_scipy():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.4 * y, 1)  # rounded: many ties, the hard case
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert M.pr_auc(y, s) == pytest.approx(skm.average_precision_score(y, s))
    pred = s > 0.7
    assert M.f1(y, pred) == pytest.approx(skm.f1_score(y, pred))
    p3 = rng.dirichlet([1, 1, 1], 200)
    y3 = rng.integers(0, 3, 200)
    assert M.log_loss(p3, y3) == pytest.approx(skm.log_loss(y3, p3, labels=[0, 1, 2]))
    x, z = rng.random(50), rng.random(50)
    assert M.spearman(x, z) == pytest.approx(stats.spearmanr(x, z).statistic)
    assert M.pearson(x, z) == pytest.approx(stats.pearsonr(x, z).statistic)
    assert M.rmse(x, z) == pytest.approx(np.sqrt(skm.mean_squared_error(x, z)))


def test_batch_axis_matches_one_at_a_time():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 30)
    s = rng.random(30)
    idx = rng.integers(0, 30, (5, 30))
    for fn in (M.roc_auc, M.pr_auc, M.spearman, M.rmse):
        batched = fn(y[idx], s[idx])
        assert batched.shape == (5,)
        np.testing.assert_allclose(batched, [fn(y[i], s[i]) for i in idx])
    p = rng.dirichlet([1, 1, 1], 30)
    y3 = rng.integers(0, 3, 30)
    np.testing.assert_allclose(M.ece(p[idx], y3[idx]), [M.ece(p[i], y3[i]) for i in idx])


def test_position_bias_by_hand():
    """A judge that always says "the first one" with p = .8: every decision flips on swap
    (consistency 0) and it prefers the first position by .8 - .1 = .7."""
    p = np.tile([.8, .1, .1], (4, 1))
    assert M.swap_consistency(p, p) == 0.0
    assert M.first_position_preference(p, p) == pytest.approx(0.7)
    # A judge that follows content: (A, B) -> A, (B, A) -> B. Fully consistent, no position bias.
    ps = np.tile([.1, .8, .1], (4, 1))
    assert M.swap_consistency(p, ps) == 1.0
    assert M.first_position_preference(p, ps) == pytest.approx(0.0)


def test_ece_perfectly_calibrated_is_zero_and_overconfident_is_not():
    y = np.array([0] * 7 + [1] * 3)
    calibrated = np.tile([.7, .3], (10, 1))   # says 70%, right 70% of the time
    overconfident = np.tile([.99, .01], (10, 1))
    assert M.ece(calibrated, y) == pytest.approx(0.0)
    assert M.ece(overconfident, y) == pytest.approx(0.29)


def test_ece_floor_is_what_calibrated_labels_give_and_shrinks_with_rows():
    """The floor is the ECE of labels drawn from the judge's own probabilities: a judge whose labels
    really are drawn so measures about the floor; a miscalibrated one lies above it."""
    rng = np.random.default_rng(5)
    p = rng.dirichlet([2, 2, 1], size=700)
    y = np.minimum((rng.random((700, 1)) > p.cumsum(1)).sum(1), 2)  # calibrated by construction
    floor = M.ece_floor(p)
    assert 0.02 < floor < 0.05  # on 700 rows: the order of issue 11's 0.03 target
    assert abs(M.ece(p, y) - floor) < 0.02
    assert M.ece(np.eye(3)[p.argmax(1)] * 0.9 + 0.1 / 3, y) > 3 * floor  # over-confident: far above it
    assert M.ece_floor(np.tile(p, (20, 1))) < floor / 3  # 20x the rows: about sqrt(20) less noise


def test_bootstrap_contains_estimate_and_narrows_with_n():
    rng = np.random.default_rng(3)
    widths = []
    for n in (50, 500, 5000):
        y = rng.integers(0, 2, n)
        s = rng.random(n) + 0.5 * y
        lo, hi = M.bootstrap_ci(M.roc_auc, y, s, n_boot=400, seed=0)
        assert lo <= M.roc_auc(y, s) <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # Seeded: the same seed gives the same interval.
    y = rng.integers(0, 2, 100)
    s = rng.random(100)
    assert M.bootstrap_ci(M.roc_auc, y, s, seed=7) == M.bootstrap_ci(M.roc_auc, y, s, seed=7)


def test_over_refusal_and_fpr():
    flagged = np.array([True, False, False, True])
    safe = np.array([True, True, True, False])
    assert M.over_refusal(flagged, safe) == pytest.approx(1 / 3)
    assert np.isnan(M.false_positive_rate([1, 1], [1, 0]))
