"""Calibration and bias of referee's judges on real data, with 95% bootstrap intervals, beside the
LLM judges shipped with PandaLM and the humans' own length preference, measured in the same run on
the same held-out rows.

    .venv/bin/python bench/evaluation.py                        # tfidf judges, every set
    .venv/bin/python bench/evaluation.py --features tfidf,frozen --sets pandalm,autoj
    .venv/bin/python bench/evaluation.py --report referee-eval  # also write the HTML report

Pair and safety judges are fitted on 90% of the training part, temperature-scaled on the other 10%
(grouped by prompt), and evaluated on a held-out 20% (referee.data.split, seed 0). Columns:
primary metric [95% CI]; ECE before -> after temperature scaling; swap consistency and mean
p(first) - p(second) before test-time swap averaging; Spearman of the preference with
len(A) - len(B) for the judge and for the humans.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from referee.data import load
from referee.data.split import train_valid_split
from referee.evaluate import evaluate, read_predictions, write_report
from referee.judges import PairJudge, RewardJudge, SafetyJudge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def fit_calibrated(judge, train):
    inner, held = train_valid_split(train, valid_fraction=0.1, seed=0)
    judge.fit(inner, held)
    if judge.task in ("pair", "safety"):
        judge.calibrate(held)
    return judge


def pair_set(name: str, path: Path, features: list[str], outside: dict[str, Path] | None = None):
    train, test = train_valid_split(load(path).examples, valid_fraction=0.2, seed=0)
    results = []
    for f in features:
        start = time.perf_counter()
        judge = fit_calibrated(PairJudge(features=f, progress=False), train)
        results.append((time.perf_counter() - start, evaluate(judge, test, name=f"pair {f}", where=name)))
    for label, file in (outside or {}).items():
        results.append((0.0, evaluate(read_predictions(file), test, name=label, where=name)))
    return results


def pandalm(features):
    folder = DATA / "pandalm"
    return pair_set("pandalm (20% held out)", folder / "testset-v1.dev.json", features,
                    {"GPT-3.5 (shipped)": folder / "gpt-3.5-turbo-testset-v1.dev.json",
                     "PandaLM-7B (shipped)": folder / "pandalm-7b-testset-v1.dev.json"})


def autoj(features):
    return pair_set("auto-j (20% held out)", DATA / "autoj" / "pairwise.dev.jsonl", features)


def arena(features):
    return pair_set("arena (20% held out)", DATA / "arena" / "train.csv", features)


def hh_rlhf(features):
    train, test = train_valid_split(load(DATA / "hh_rlhf_harmless" / "train.jsonl.gz").examples, 0.2, seed=0)
    # chosen is always A in this source: show half the test pairs the other way round
    test = [ex.swapped() if i % 2 else ex for i, ex in enumerate(test)]
    results = []
    for f in features:
        start = time.perf_counter()
        judge = fit_calibrated(RewardJudge(features=f, progress=False), train)
        results.append((time.perf_counter() - start, evaluate(judge, test, name=f"reward {f}", where="hh-rlhf harmless (20% held out)")))
    return results


def moderation(features):
    """Safety judges trained on OpenAI moderation; evaluated on its held-out rows, and on XSTest's
    prompts for over-refusal (a different source: safe requests that sound harmful)."""
    train, test = train_valid_split(load(DATA / "openai_moderation" / "samples.dev.jsonl.gz").examples, 0.2, seed=0)
    xstest = load(DATA / "xstest" / "xstest_prompts.csv").examples
    results = []
    for f in features:
        for rule in ("f1", "fpr"):  # threshold at maximum F1, or at a 5% false-positive rate
            start = time.perf_counter()
            judge = fit_calibrated(SafetyJudge(features=f, threshold=rule, progress=False), train)
            took = time.perf_counter() - start
            name = f"safety {f}, threshold {rule}"
            results.append((took, evaluate(judge, test, name=name, where="openai moderation (20% held out)")))
            results.append((took, evaluate(judge, xstest, name=name, where="xstest prompts (over-refusal)")))
    return results


SETS = {"pandalm": pandalm, "autoj": autoj, "arena": arena, "hh_rlhf": hh_rlhf, "moderation": moderation}


def _ci(r, key: str) -> str:
    if key not in r.metrics:
        return "—"
    lo, hi = r.ci.get(key, (float("nan"), float("nan")))
    return f"{r.metrics[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _num(r, key: str) -> str:
    return f"{r.metrics[key]:.3f}" if key in r.metrics else "—"


def print_table(rows) -> None:
    print("| data | judge | n | primary metric [95% CI] | ECE before → after | swap consistency | p(first) − p(second) "
          "| length bias: judge / humans (safety: false positives) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for took, r in rows:
        ece_key = "ece/any" if r.task == "safety" else "ece"
        ece = (f"{_num(r, ece_key.replace('ece', 'ece_before'))} → {_num(r, ece_key)}"
               if ece_key.replace("ece", "ece_before") in r.metrics else _num(r, ece_key))
        length = (f"{r.metrics['length_bias_judge']:.2f} / {r.metrics['length_bias_human']:.2f}"
                  if "length_bias_judge" in r.metrics else "—")
        if r.task == "safety":  # no position or length bias to measure: show the false-positive side
            length = (f"over-refusal {_num(r, 'over_refusal')}, unsafe recall {_num(r, 'unsafe_recall')}"
                      if r.data_task == "prompts" else f"fpr {_num(r, 'fpr/any')}")
        print(f"| {r.data} | {r.judge} | {r.n} | {r.primary} {_ci(r, r.primary)} | {ece} | {_num(r, 'swap_consistency')} "
              f"| {_num(r, 'first_position_preference')} | {length} | {took:.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {', '.join(SETS)}")
    parser.add_argument("--features", default="tfidf", help="comma-separated backends: tfidf, frozen")
    parser.add_argument("--report", help="also write the HTML report to this folder")
    a = parser.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"no data at {DATA}")
    warnings.filterwarnings("ignore")
    rows = []
    for name in a.sets.split(","):
        start = time.perf_counter()
        rows += SETS[name](a.features.split(","))
        print(f"[{name}: {time.perf_counter() - start:.0f}s]", file=sys.stderr, flush=True)
    print_table(rows)
    if a.report:
        print(f"report: {write_report(a.report, [r for _, r in rows], 'referee evaluation on ../shared/data')}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
