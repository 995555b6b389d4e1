"""Evaluate a judge (or outside predictions) on labelled examples.

    from referee.evaluate import evaluate
    result = evaluate(judge, examples)            # or evaluate(read_predictions("p.csv"), examples)
    result.to_dict()   # {"judge", "task", "n", "primary", "metrics": {...}, "ci": {name: [low, high]}}

One evaluator per (judge task, data task), each a callable that reads `source.outputs(examples)` —
a judge and a predictions file (`referee.evaluate.outputs`) answer the same call — and returns a
`Scored`: `metrics` (dict[str, float]) and the name of its `primary` metric, with 95% bootstrap
intervals in `ci` (rows resampled together, seeded), notes, and the per-row arrays the report draws
from (`details`, not part of the JSON).

Which data each judge is evaluated on is the judge class's `eval_data`: score -> score data; pair
and reward -> pair data; safety -> safety data, or prompt data labelled safe/unsafe (XSTest) for
over-refusal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from referee.data.split import overlap
from referee.errors import UserError
from referee.evaluate import metrics as M
from referee.evaluate.outputs import Predictions
from referee.schema import PAIR_LABELS

MISTAKES = 12        # rows in the report's "most confident mistakes" table
SNIPPET = 700        # characters of each text shown there


@dataclass
class Scored:
    """What an evaluator returns: metrics with their intervals, the primary metric's name, notes,
    the number of rows scored, and the per-row arrays the report draws from."""

    metrics: dict[str, float]
    ci: dict[str, list[float]]
    primary: str
    n: int
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    judge: str
    task: str                                   # the judge's task
    n: int
    metrics: dict[str, float]
    ci: dict[str, list[float]]
    primary: str
    data_task: str = ""                         # the data's task ("prompts" for XSTest prompts)
    data: str = ""                              # what was evaluated on (a path or a name)
    n_boot: int = 1000                          # bootstrap resamples behind `ci`
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # per-row arrays for the plots; not in to_dict()
    train_overlap: int = 0                       # rows whose opening request the judge was trained on

    def to_dict(self) -> dict:
        return {"judge": self.judge, "task": self.task, "data": self.data, "n": self.n, "primary": self.primary,
                "metrics": {k: _clean(v) for k, v in self.metrics.items()},
                "ci": {k: [_clean(lo), _clean(hi)] for k, (lo, hi) in self.ci.items()},
                "train_overlap": self.train_overlap, "notes": self.notes}


def _clean(x: float) -> float | None:
    """JSON has no NaN: undefined numbers (one class only, constant input) become null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


# --- checks ------------------------------------------------------------------------------------

def check_task(judge_name: str, judge_task: str, eval_data: tuple[str, ...], examples, where: str = "the data") -> str:
    """The data's task, or a plain error when it is not one of the judge's `eval_data`."""
    if not examples:
        raise UserError(f"{where}: no examples to evaluate on")
    data_task = examples[0].task
    if any(ex.task != data_task for ex in examples):
        raise UserError(f"{where}: mixes tasks ({sorted({ex.task for ex in examples})}); evaluate one task at a time")
    if data_task not in eval_data:
        needed = " or ".join(eval_data)
        raise UserError(f"{judge_name} is a {judge_task} judge, but {where} holds {data_task} examples; "
                        f"a {judge_task} judge is evaluated on {needed} data")
    return data_task


def _labelled(examples, is_labelled, what: str, where: str, notes: list[str]) -> list:
    kept = [ex for ex in examples if is_labelled(ex)]
    if not kept:
        raise UserError(f"{where}: no row has a {what}; evaluation needs labelled data "
                        "(use `referee predict` for unlabelled data)")
    if len(kept) < len(examples):
        notes.append(f"{len(examples) - len(kept)} of {len(examples)} rows have no {what} and were left out")
    return kept


# --- evaluators ----------------------------------------------------------------------------------

def _with_ci(values: dict, statistics: dict, n_boot: int, seed: int) -> tuple[dict, dict]:
    """metrics and their bootstrap intervals; `statistics[name] = (fn, *arrays)`."""
    metrics, ci = dict(values), {}
    for name, (fn, *arrays) in statistics.items():
        metrics[name] = float(fn(*arrays))
        ci[name] = list(M.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed))
    return metrics, ci


def _snippet(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= SNIPPET else text[:SNIPPET] + " …"


class ScoreEvaluator:
    """RMSE, MAE, Spearman, Pearson, overall and per metric; primary: RMSE (lower is better)."""

    primary = "rmse"

    def __call__(self, judge, examples, n_boot=1000, seed=0, where="the data"):
        notes: list[str] = []
        examples = _labelled(examples, lambda ex: ex.score is not None, "score", where, notes)
        y = np.array([ex.score for ex in examples], dtype=float)
        pred = judge.outputs(examples)["pred"]
        names = np.array([ex.metric for ex in examples])
        stats = {"rmse": (M.rmse, y, pred), "mae": (M.mae, y, pred), "spearman": (M.spearman, y, pred),
                 "pearson": (M.pearson, y, pred)}
        per_metric = sorted(set(names))
        if len(per_metric) > 1:
            for m in per_metric:
                rows = names == m
                stats.update({f"rmse/{m}": (M.rmse, y[rows], pred[rows]), f"spearman/{m}": (M.spearman, y[rows], pred[rows])})
        scales = sorted({tuple(ex.scale) for ex in examples})
        if len(scales) > 1:
            notes.append(f"rows use different scales {scales}: overall RMSE/MAE mix units; read them per metric")
        metrics, ci = _with_ci({}, stats, n_boot, seed)
        error = np.abs(pred - y)
        worst = np.argsort(-error)[:MISTAKES]
        mistakes = [{"id": examples[i].id, "metric": examples[i].metric, "human": y[i], "judge": round(float(pred[i]), 3),
                     "error": round(float(error[i]), 3), "prompt": _snippet(examples[i].conversation.prompt),
                     "response": _snippet(examples[i].conversation.response)} for i in worst]
        details = {"y": y, "pred": pred, "metric": names, "scale": scales[0], "mistakes": mistakes,
                   "length": np.array([len(ex.conversation.response or "") for ex in examples])}
        return Scored(metrics, ci, self.primary, len(examples), notes, details)


class PairEvaluator:
    """Log loss, accuracy, Brier, ECE (before and after temperature), position and length bias;
    primary: log loss (accuracy for judges that give verdicts only)."""

    primary = "log_loss"

    def __call__(self, judge, examples, n_boot=1000, seed=0, where="the data"):
        notes: list[str] = []
        examples = _labelled(examples, lambda ex: ex.target is not None, "label", where, notes)
        out = judge.outputs(examples)
        target = np.array([ex.target for ex in examples], dtype=float)
        label = np.array([PAIR_LABELS.index(ex.label) for ex in examples])
        if "proba" in out and not out["proba"][:, 2].any() and (label == 2).any():
            # A two-way judge never says tie: score it on the pairs that have a winner.
            keep = label != 2
            notes.append(f"two-way judge: {int((~keep).sum())} tie rows left out")
            examples = [ex for ex, k in zip(examples, keep) if k]
            out = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in out.items()}
            target, label = target[keep], label[keep]
        three_way = bool((label == 2).any())
        len_diff = np.array([len(ex.response_a) - len(ex.response_b) for ex in examples], dtype=float)
        human_pref = target[:, 0] - target[:, 1]

        if "decision" in out:  # verdicts only (PandaLM's LLM judges)
            decision = out["decision"]
            failed = int((decision < 0).sum())
            if failed:
                notes.append(f"{failed} rows without a usable verdict count as wrong")
            agree = lambda d, y: (d == y).mean(axis=-1)  # noqa: E731
            coded = np.select([decision == 0, decision == 1], [1.0, -1.0], 0.0)
            stats = {"accuracy": (agree, decision, label),
                     "length_bias_judge": (M.length_bias, coded, len_diff),
                     "length_bias_human": (M.length_bias, human_pref, len_diff)}
            metrics, ci = _with_ci({}, stats, n_boot, seed)
            metrics["failed"] = float(failed)
            proba = np.eye(3)[np.where(decision < 0, 2, decision)] * (decision >= 0)[:, None]
            details = {"proba": proba, "label": label, "len_diff": len_diff, "pref": coded, "human_pref": human_pref,
                       "three_way": three_way, "hard": True}
            return Scored(metrics, ci, "accuracy", len(examples), notes, details)

        proba = out["proba"]
        stats = {"log_loss": (M.log_loss, proba, target), "accuracy": (partial(M.accuracy, three_way=three_way), proba, label),
                 "brier": (M.brier, proba, target), "ece": (M.ece, proba, label),
                 "length_bias_judge": (M.length_bias, proba[:, 0] - proba[:, 1], len_diff),
                 "length_bias_human": (M.length_bias, human_pref, len_diff)}
        if "proba_before" in out:
            stats["ece_before"] = (M.ece, out["proba_before"], label)
            stats["log_loss_before"] = (M.log_loss, out["proba_before"], target)
        if "proba_first" in out:
            stats["swap_consistency"] = (M.swap_consistency, out["proba_first"], out["proba_swapped"])
            stats["first_position_preference"] = (M.first_position_preference, out["proba_first"], out["proba_swapped"])
        metrics, ci = _with_ci({}, stats, n_boot, seed)
        metrics["ece_floor"] = M.ece_floor(proba)
        if "temperature" in out:
            metrics["temperature"] = out["temperature"]

        decision = proba.argmax(1) if three_way else proba[:, :2].argmax(1)
        wrong = np.flatnonzero(decision != label)
        confidence = proba[wrong, decision[wrong]]
        mistakes = [{"id": examples[i].id, "human": PAIR_LABELS[label[i]], "judge": PAIR_LABELS[decision[i]],
                     "confidence": round(float(c), 3), "prompt": _snippet(examples[i].a.prompt),
                     "response_a": _snippet(examples[i].response_a), "response_b": _snippet(examples[i].response_b)}
                    for i, c in sorted(zip(wrong, confidence), key=lambda t: -t[1])[:MISTAKES]]
        details = {**{k: v for k, v in out.items() if isinstance(v, np.ndarray)}, "label": label,
                   "len_diff": len_diff, "pref": proba[:, 0] - proba[:, 1], "human_pref": human_pref,
                   "three_way": three_way, "hard": False, "mistakes": mistakes}
        return Scored(metrics, ci, self.primary, len(examples), notes, details)


class SafetyEvaluator:
    """ROC-AUC, PR-AUC, F1 and false-positive rate at the saved threshold, per category and "any";
    ECE of p(unsafe) before and after temperature; primary: ROC-AUC of "any"."""

    primary = "roc_auc/any"

    def __call__(self, judge, examples, n_boot=1000, seed=0, where="the data"):
        notes: list[str] = []
        examples = _labelled(examples, lambda ex: any(v is not None for v in ex.labels.values()), "safety label",
                             where, notes)
        out = judge.outputs(examples)
        categories = out["categories"]
        stats = {}
        threshold = out.get("threshold", 0.5)
        columns = [(c, j) for j, c in enumerate(categories) if any(c in ex.labels for ex in examples)] + [("any", -1)]
        for name, j in columns:
            if name == "any":
                y = np.array([np.nan if ex.unsafe is None else float(ex.unsafe) for ex in examples])
            else:
                y = np.array([np.nan if ex.labels.get(name) is None else float(ex.labels[name]) for ex in examples])
            known = ~np.isnan(y)
            if not known.any():
                continue
            yk, p = y[known].astype(bool), out["proba"][known, j]
            # "any" is flagged at the judge's saved threshold (cost > 0); a category at the same cut.
            flagged = out["flagged"][known] if name == "any" else p > threshold
            if np.isnan(p).any():
                continue
            stats.update({f"roc_auc/{name}": (M.roc_auc, yk, p), f"pr_auc/{name}": (M.pr_auc, yk, p),
                          f"f1/{name}": (M.f1, yk, flagged), f"fpr/{name}": (M.false_positive_rate, yk, flagged)})
            if name == "any":
                two = np.stack([1 - p, p], 1)
                stats["ece/any"] = (M.ece, two, yk.astype(int))
                if "proba_before" in out:
                    pb = out["proba_before"][known, -1]
                    stats["ece_before/any"] = (M.ece, np.stack([1 - pb, pb], 1), yk.astype(int))
                any_known, y_any, p_any, flagged_any = known, yk, p, flagged
        metrics, ci = _with_ci({}, stats, n_boot, seed)
        if "ece/any" in stats:
            metrics["ece_floor/any"] = M.ece_floor(stats["ece/any"][1])
        for key in ("threshold", "temperature"):
            if key in out:
                metrics[key] = out[key]
        kept = [ex for ex, k in zip(examples, any_known) if k]
        error = np.abs(p_any - y_any)
        wrong = np.flatnonzero(flagged_any != y_any)
        mistakes = [{"id": kept[i].id, "human": "unsafe" if y_any[i] else "safe", "judge": "unsafe" if flagged_any[i] else "safe",
                     "p_unsafe": round(float(p_any[i]), 3), "prompt": _snippet(kept[i].conversation.prompt),
                     "response": _snippet(kept[i].conversation.response)}
                    for i in sorted(wrong, key=lambda i: -error[i])[:MISTAKES]]
        details = {"p": p_any, "y": y_any, "flagged": flagged_any, "threshold": threshold, "mistakes": mistakes,
                   "p_before": out["proba_before"][any_known, -1] if "proba_before" in out else None}
        return Scored(metrics, ci, self.primary, len(examples), notes, details)


class PromptSafetyEvaluator:
    """A safety judge on requests labelled safe/unsafe (XSTest): over-refusal (safe requests
    flagged), unsafe recall, ROC-AUC; primary: over-refusal (lower is better)."""

    primary = "over_refusal"

    def __call__(self, judge, examples, n_boot=1000, seed=0, where="the data"):
        notes: list[str] = []
        examples = _labelled(examples, lambda ex: ex.label is not None, "safe/unsafe label", where, notes)
        out = judge.outputs(examples)
        p, flagged = out["proba"][:, -1], np.asarray(out["flagged"], bool)
        unsafe = np.array([ex.label == "unsafe" for ex in examples])
        stats = {"over_refusal": (M.over_refusal, flagged, ~unsafe)}
        if unsafe.any():
            stats["unsafe_recall"] = (lambda f, u: (f & u).sum(-1) / np.maximum(u.sum(-1), 1), flagged, unsafe)
            stats["roc_auc"] = (M.roc_auc, unsafe, p)
        metrics, ci = _with_ci({}, stats, n_boot, seed)
        categories = np.array([ex.category or "" for ex in examples])
        for c in sorted(set(categories[~unsafe])):
            rows = (categories == c) & ~unsafe
            metrics[f"over_refusal/{c}"] = float(flagged[rows].mean())
        wrong = np.flatnonzero(flagged != unsafe)
        error = np.abs(p - unsafe)
        mistakes = [{"id": examples[i].id, "human": "unsafe" if unsafe[i] else "safe", "judge": "unsafe" if flagged[i] else "safe",
                     "p_unsafe": round(float(p[i]), 3), "prompt": _snippet(examples[i].conversation.prompt),
                     "category": examples[i].category or ""}
                    for i in sorted(wrong, key=lambda i: -error[i])[:MISTAKES]]
        details = {"p": p, "y": unsafe, "flagged": flagged, "threshold": out.get("threshold", 0.5), "mistakes": mistakes,
                   "p_before": None}
        return Scored(metrics, ci, self.primary, len(examples), notes, details)


class RewardEvaluator:
    """Pairwise accuracy, the margin distribution, reward-vs-length correlation (beside the humans'
    length preference); primary: pairwise accuracy."""

    primary = "pairwise_accuracy"

    def __call__(self, judge, examples, n_boot=1000, seed=0, where="the data"):
        notes: list[str] = []
        examples = _labelled(examples, lambda ex: ex.label is not None, "label", where, notes)
        decided = [ex for ex in examples if ex.label in ("A", "B")]
        if len(decided) < len(examples):
            notes.append(f"{len(examples) - len(decided)} tie rows left out (a reward compares two responses)")
        if not decided:
            raise UserError(f"{where}: every labelled pair is a tie; a reward judge needs A or B wins")
        out = judge.outputs(decided)
        r_a, r_b = out["r_a"], out["r_b"]
        a_wins = np.array([ex.label == "A" for ex in decided])
        chosen, rejected = np.where(a_wins, r_a, r_b), np.where(a_wins, r_b, r_a)
        len_a = np.array([len(ex.response_a) for ex in decided], dtype=float)
        len_b = np.array([len(ex.response_b) for ex in decided], dtype=float)
        stats = {"pairwise_accuracy": (M.pairwise_accuracy, chosen, rejected),
                 "margin_mean": (lambda c, r: (c - r).mean(axis=-1), chosen, rejected),
                 "reward_length_spearman": (M.spearman, np.r_[r_a, r_b], np.r_[len_a, len_b]),
                 "length_bias_judge": (M.length_bias, r_a - r_b, len_a - len_b),
                 "length_bias_human": (M.length_bias, np.where(a_wins, 1.0, -1.0), len_a - len_b)}
        metrics, ci = _with_ci({}, stats, n_boot, seed)
        summary = M.margin_summary(chosen, rejected)
        metrics.update({k: v for k, v in summary.items() if k != "margin_mean"})
        margin = chosen - rejected
        mistakes = [{"id": decided[i].id, "human": decided[i].label, "margin": round(float(margin[i]), 3),
                     "prompt": _snippet(decided[i].a.prompt), "response_a": _snippet(decided[i].response_a),
                     "response_b": _snippet(decided[i].response_b)}
                    for i in np.argsort(margin)[:MISTAKES] if margin[i] < 0]
        details = {"chosen": chosen, "rejected": rejected, "margin": margin, "len_diff": len_a - len_b,
                   "pref": r_a - r_b, "human_pref": np.where(a_wins, 1.0, -1.0), "mistakes": mistakes,
                   "length": np.r_[len_a, len_b], "reward": np.r_[r_a, r_b]}
        return Scored(metrics, ci, self.primary, len(decided), notes, details)


EVALUATORS = {("score", "score"): ScoreEvaluator(), ("pair", "pair"): PairEvaluator(),
              ("safety", "safety"): SafetyEvaluator(), ("safety", "prompts"): PromptSafetyEvaluator(),
              ("reward", "pair"): RewardEvaluator()}


def evaluate(judge, examples, *, name: str | None = None, n_boot: int = 1000, seed: int = 0,
             where: str = "the data", folder: str | Path | None = None) -> Evaluation:
    """Evaluate a fitted judge (or `Predictions`) on labelled examples of its task.

    `where` names the data in error messages; `folder` is the judge folder, whose training history
    (history.json) the report draws when there is one.

    >>> from referee import Conversation, ScoreExample, ScoreJudge
    >>> rated = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", 5),
    ...          ("How do I boil an egg?", "No idea.", 1),
    ...          ("What is the capital of France?", "Paris is the capital of France.", 5),
    ...          ("What is the capital of France?", "Not sure, look it up.", 2),
    ...          ("How many legs has a spider?", "A spider has eight legs.", 5),
    ...          ("How many legs has a spider?", "No idea, sorry.", 1),
    ...          ("What colour is the sky?", "The sky is blue on a clear day.", 5),
    ...          ("What colour is the sky?", "Not sure, sorry.", 1)]
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(prompt, response),
    ...                      metric="helpfulness", score=score, scale=(1, 5))
    ...         for i, (prompt, response, score) in enumerate(rated)]
    >>> train, test = rows[:6], rows[6:]  # the sky question is held out
    >>> judge = ScoreJudge(progress=False).fit(train)
    >>> held_out = evaluate(judge, test, name="mine", n_boot=100)
    >>> held_out.primary, held_out.n, round(held_out.metrics["rmse"], 2), held_out.train_overlap
    ('rmse', 2, 0.88, 0)
    >>> evaluate(judge, rows, n_boot=100).notes[0][:60]  # rows it learnt from: said first, in capitals
    'TRAINING ROWS: 6 of 8 rows open with a request the judge was'
    """
    examples = list(examples)
    outside = isinstance(judge, Predictions)
    name = name or (judge.name if outside else type(judge).__name__)
    data_task = check_task(name, judge.task, judge.eval_data, examples, where)
    scored = EVALUATORS[(judge.task, data_task)](judge, examples, n_boot, seed, where)
    scored.details["history"] = training_history(judge.history_, folder)
    if outside and judge.unused:
        scored.notes.append(f"{judge.unused} predictions for ids not in the data were not used")
    seen = overlap(examples, judge.train_digest_) if judge.train_digest_ else 0
    if seen:
        # First, and in capitals: numbers on training rows flatter the judge (0.82 where out-of-fold says 0.46).
        scored.notes.insert(0, f"TRAINING ROWS: {seen} of {len(examples)} rows open with a request the judge was "
                               "trained on; these numbers overstate how it does on new data (evaluate on held-out "
                               "rows, or use --folds for out-of-fold figures)")
    return Evaluation(judge=name, task=judge.task, n=scored.n, metrics=scored.metrics, ci=scored.ci,
                      primary=scored.primary, data_task=data_task, data=where, n_boot=n_boot, notes=scored.notes,
                      details=scored.details, train_overlap=seen)


def training_history(rows: list[dict] | None, folder: str | Path | None = None) -> dict | None:
    """Loss curves, when there are any: {"x": "epoch" | "step", "train": [[x, y]...], "valid": [...],
    "valid_name"}.

    `rows`: a judge trained in this process keeps its curve in `history_` (one row per epoch of head
    training, or per optimizer step of fine-tuning, with `valid_<metric>` on evaluated rows); else
    the fine-tuning loop's `history.json` in the judge folder, when it wrote one.

    >>> training_history([{"epoch": 1, "loss": 0.9, "valid_loss": 1.0}, {"epoch": 2, "loss": 0.5, "valid_loss": 0.8}])
    {'x': 'epoch', 'train': [[1, 0.9], [2, 0.5]], 'valid': [[1, 1.0], [2, 0.8]], 'valid_name': 'valid_loss'}
    """
    if rows is None and folder is not None and (Path(folder) / "history.json").is_file():
        try:
            rows = json.loads((Path(folder) / "history.json").read_text(encoding="utf-8"))["history"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None
    if not isinstance(rows, list):
        return None
    rows = [r for r in rows if isinstance(r, dict) and ("step" in r or "epoch" in r) and "loss" in r]
    if not rows:
        return None
    x = "step" if "step" in rows[0] else "epoch"
    valid_key = next((k for r in rows for k in r if k.startswith("valid_")), None)
    return {"x": x, "train": [[r[x], r["loss"]] for r in rows],
            "valid": [[r[x], r[valid_key]] for r in rows if valid_key and valid_key in r], "valid_name": valid_key or ""}
