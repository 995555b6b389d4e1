"""Judges for the serving benchmark and the README screenshot, trained in seconds on ../shared/data.

    .venv/bin/python bench/serve_judges.py OUT_DIR [--frozen]

writes OUT_DIR/arena-pair, moderation-safety, pyrit-score, hh-reward (TF-IDF) and, with --frozen,
OUT_DIR/arena-pair-minilm and moderation-safety-minilm (frozen all-MiniLM-L6-v2 + a small head).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from referee.data import load, load_default
from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def train_judges(out: Path, frozen: bool = False, only: list[str] | None = None) -> dict[str, Path]:
    """name -> saved judge folder; `only` names the judges to train (default: the TF-IDF ones, and
    the frozen ones with `frozen`)."""
    arena = lambda: load(DATA / "arena" / "train.csv").examples  # noqa: E731
    moderation = lambda: load(DATA / "openai_moderation" / "samples.dev.jsonl.gz").examples  # noqa: E731
    plan = {
        "arena-pair": lambda: PairJudge("tfidf", progress=False).fit(arena()),
        "moderation-safety": lambda: SafetyJudge("tfidf", progress=False).fit(moderation()),
        "pyrit-score": lambda: ScoreJudge("tfidf", progress=False).fit(load_default().examples),
        "hh-reward": lambda: RewardJudge("tfidf", progress=False).fit(load(DATA / "hh_rlhf_harmless" / "train.jsonl.gz").examples),
        "arena-pair-minilm": lambda: PairJudge("frozen", "minilm", progress=False, epochs=60).fit(arena()),
        "moderation-safety-minilm": lambda: SafetyJudge("frozen", "minilm", progress=False, epochs=60).fit(moderation()),
    }
    only = only or [name for name in plan if frozen or not name.endswith("-minilm")]
    folders = {}
    for name, fit in ((name, plan[name]) for name in only):
        started = time.perf_counter()
        folders[name] = fit().save(out / name)
        print(f"trained {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return folders


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frozen", action="store_true", help="also train frozen MiniLM judges (a minute on 2 cores)")
    args = parser.parse_args()
    train_judges(args.out, args.frozen)
