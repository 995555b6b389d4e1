"""Preference judges trained on ../shared/data, scored on human-judged and correctness-judged pairs from
outside it: are they more than length detectors? (issue 12's acceptance sets)

    .venv/bin/python bench/outside.py                                  # script + referee tfidf, ~5 min
    .venv/bin/python bench/outside.py --judges "script,referee tfidf,referee stack,referee lm smollm2"

The outside sets are named sources of `referee.data`, read out of pinned wheels on the package index
(`referee.data.samples` says what each holds): `mt-bench:sample`, 80 MT-Bench human pairs (experts'
majority, no ties), and `judgebench:sample`, 172 JudgeBench pairs (a correct and a wrong answer by one
model). LLMBar is on no package index.

Each judge is trained on all rows of one training source (Arena 800, PandaLM 694, Auto-J 1,000,
HH-RLHF harmless 1,800 as a reward judge) or on Arena + PandaLM + Auto-J together, and scored on every
outside pair: two-way accuracy (the better of p(A) and p(B); an exact tie counts half), with a 95%
bootstrap interval over prompts and the paired bootstrap difference to "longer wins" on the same pairs. The
judges are the leaderboard's (`bench/leaderboard.py`): its tuned script, and referee's own.
Writes bench/results/outside.json (a run of some judges keeps the other judges' cells).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from leaderboard import DATA, JUDGES, LM, SETS, Set, hh_examples  # the same judges and training sets

from referee.data import load
from referee.data.mix import namespaced
from referee.evaluate import metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "outside.json"
OUTSIDE = {"MT-Bench human": "mt-bench:sample", "JudgeBench": "judgebench:sample"}  # referee.data.samples
TRAINING = {
    "arena": lambda: SETS["arena"].examples(),
    "pandalm": lambda: SETS["pandalm"].examples(),
    "autoj": lambda: SETS["autoj"].examples(),
    "arena+pandalm+autoj": lambda: namespaced({n: SETS[n].examples() for n in ("arena", "pandalm", "autoj")}),
    "hh_rlhf (reward)": hh_examples,
}


def a_better(p: np.ndarray) -> np.ndarray:
    """1 where the judge prefers A, 0 where B, 0.5 on an exact tie; p is (n, 3) or a reward judge's (n,) p(A)."""
    pa, pb = (p[:, 0], p[:, 1]) if p.ndim == 2 else (p, 1 - p)
    return np.where(pa > pb, 1.0, np.where(pa < pb, 0.0, 0.5))


def correct(choice: np.ndarray, examples) -> np.ndarray:
    a_wins = np.array([ex.label == "A" for ex in examples])
    return np.where(a_wins, choice, 1 - choice)


def longer(examples) -> np.ndarray:
    """Longer wins as a choice: 1 where A is longer, 0 where B is, 0.5 on equal lengths."""
    return 0.5 + 0.5 * np.sign([len(ex.a.response) - len(ex.b.response) for ex in examples])


def questions(examples) -> np.ndarray:
    """Each pair's question, numbered in sorted order: pairs that share one are resampled together."""
    number = {prompt: i for i, prompt in enumerate(sorted({ex.a.prompt for ex in examples}))}
    return np.array([number[ex.a.prompt] for ex in examples])


def summary(right: np.ndarray, baseline: np.ndarray, group: np.ndarray) -> dict:
    """Accuracy and its difference to longer wins, each with a 95% bootstrap interval that resamples
    questions, not pairs (MT-Bench's 80 pairs share 52): per question, the sums and the count."""
    per = lambda x: np.bincount(group, weights=x)  # noqa: E731
    count = per(np.ones(len(group)))
    ratio = lambda s, n: s.sum(axis=-1) / n.sum(axis=-1)  # noqa: E731
    return {"accuracy": float(right.mean()), "interval": metrics.bootstrap_ci(ratio, per(right), count),
            "vs longer wins": float((right - baseline).mean()),
            "vs longer wins interval": metrics.bootstrap_ci(ratio, per(right - baseline), count)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judges", default="script,referee tfidf",
                        help=f"comma-separated, from {', '.join({**JUDGES, **LM})}")
    parser.add_argument("--train", default=",".join(TRAINING), help=f"comma-separated, from {', '.join(TRAINING)}")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"outside: needs the training data at {DATA}", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    known = {**JUDGES, **LM}
    judges = {name: known[name] for name in args.judges.split(",")}
    outside = {name: load(source).examples for name, source in OUTSIDE.items()}
    every = [ex for rows in outside.values() for ex in rows]
    start = {name: sum(len(outside[n]) for n in list(outside)[:i]) for i, name in enumerate(outside)}
    results = {"outside": {name: len(rows) for name, rows in outside.items()}, "cells": []}
    if RESULTS.is_file():  # cells of other judges or training sources, measured earlier, are kept
        earlier = json.loads(RESULTS.read_text())
        if earlier.get("outside") == results["outside"]:
            asked = {(t, j) for t in args.train.split(",") for j in judges}
            results["cells"] = [c for c in earlier["cells"] if (c["train"], c["judge"]) not in asked]
    baseline = {name: correct(longer(rows), rows) for name, rows in outside.items()}
    groups = {name: questions(rows) for name, rows in outside.items()}
    print("outside pairs: " + ", ".join(f"{n} {len(r)} (longer wins {baseline[n].mean():.3f})" for n, r in outside.items()),
          flush=True)
    for source in args.train.split(","):
        train = TRAINING[source]()
        task = "reward" if source.startswith("hh_rlhf") else "pair"
        for judge_name, judge in judges.items():
            t = time.perf_counter()
            p = judge(Set(source, task, lambda: train, {}), train, every)  # every outside pair in one call
            seconds = time.perf_counter() - t
            for name, rows in outside.items():
                right = correct(a_better(p[start[name]: start[name] + len(rows)]), rows)
                cell = {"train": source, "judge": judge_name, "set": name, "seconds": seconds,
                        **summary(right, baseline[name], groups[name])}
                results["cells"].append(cell)
                print(f"  {source:20s} {judge_name:24s} {name:15s} {cell['accuracy']:.3f} "
                      f"(vs longer wins {cell['vs longer wins']:+.3f})  {seconds:.0f}s", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1))
    print_table(results, baseline)
    return 0


def print_table(results: dict, baseline: dict) -> None:
    names = list(results["outside"])
    print("\n| trained on | judge | " + " | ".join(f"{n} ({results['outside'][n]}) | vs longer wins" for n in names) + " |")
    print("|---|---|" + "---:|---:|" * len(names))
    print("| — | longer wins | " + " | ".join(f"{baseline[n].mean():.3f} | " for n in names) + " |")
    rows: dict = {}
    for c in results["cells"]:
        rows.setdefault((c["train"], c["judge"]), {})[c["set"]] = c
    for (train, judge), cells in rows.items():
        text = " | ".join(f"{cells[n]['accuracy']:.3f} [{cells[n]['interval'][0]:.2f}, {cells[n]['interval'][1]:.2f}] | "
                          f"{cells[n]['vs longer wins']:+.3f} [{cells[n]['vs longer wins interval'][0]:+.2f}, "
                          f"{cells[n]['vs longer wins interval'][1]:+.2f}]" for n in names)
        print(f"| {train} | {judge} | {text} |")


if __name__ == "__main__":
    sys.exit(main())
