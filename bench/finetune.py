"""Does fine-tuning MiniLM beat frozen MiniLM features on Chatbot Arena? Measured, on CPU, in one run.

One prompt-grouped split of ../shared/data/arena/train.csv (fold 0 of `referee.data.split.kfold(k=5)`:
4/5 to train, 1/5 held out), the same for every row:

  uniform      p = 1/3 each (the trivial baseline)
  prior        the training label shares
  tfidf        PairJudge(features="tfidf")
  frozen       PairJudge(features="frozen")            all-MiniLM-L6-v2, cached embeddings, torch head
  finetune     PairJudge(features="finetune")          the same MiniLM trained end to end under the same head
  finetune+lp  PairJudge(features="finetune", warm_start) head fitted on frozen features first (LP-FT)

Held-out log loss and accuracy, uncalibrated (temperature 1) for every judge, and wall time.
The fine-tuning budget is small on purpose (CPU, shared cores): --epochs 1, --max-length 128 tokens
per side, batch 16. Usage:

    .venv/bin/python bench/finetune.py [--epochs 1] [--max-length 128] [--threads 1] [--no-lpft]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ARENA = ROOT.parent / "shared" / "data" / "arena" / "train.csv"


def finetune_row(train, test, *, epochs: float = 1, max_length: int = 128, batch_size: int = 16, lr: float = 5e-5,
                 warm_start: bool = False, seed: int = 0) -> dict:
    """Fine-tune a MiniLM pair judge on `train`, evaluate it on `test`: {"log_loss", "accuracy", "seconds"}.

    For bench/quality.py and this script alike."""
    from referee.judges import PairJudge

    start = time.perf_counter()
    config = {"epochs": epochs, "max_length": max_length, "batch_size": batch_size, "lr": lr,
              "warm_start": warm_start, "patience": None}
    judge = PairJudge(features="finetune", finetune=config, seed=seed).fit(train)
    metrics = judge.validate(test)
    return {"log_loss": metrics["log_loss"], "accuracy": metrics["accuracy"],
            "seconds": time.perf_counter() - start, "steps": len(judge.history_)}


def _judge_row(features: str, train, test) -> dict:
    from referee.judges import PairJudge

    start = time.perf_counter()
    judge = PairJudge(features=features).fit(train)
    metrics = judge.validate(test)
    return {"log_loss": metrics["log_loss"], "accuracy": metrics["accuracy"], "seconds": time.perf_counter() - start}


def _constant_row(p: np.ndarray, test) -> dict:
    t = np.asarray([ex.target for ex in test])
    return {"log_loss": float(-(t * np.log(p)).sum(1).mean()), "accuracy": float((t.argmax(1) == p.argmax()).mean()),
            "seconds": 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per side when fine-tuning")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--no-lpft", dest="lpft", action="store_false", help="skip the LP-FT row")
    args = parser.parse_args(argv)
    if not ARENA.is_file():
        print(f"no Arena data at {ARENA}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    from referee.data import load
    from referee.data.split import kfold

    examples = load(str(ARENA)).examples
    train_idx, test_idx = kfold(examples, k=5, seed=0)[0]
    train, test = [examples[i] for i in train_idx], [examples[i] for i in test_idx]
    print(f"Arena: {len(train)} training pairs, {len(test)} held out (prompt-grouped fold 0 of 5); "
          f"torch threads {args.threads}", flush=True)

    shares = np.asarray([ex.target for ex in train]).mean(0)
    rows = {"uniform": _constant_row(np.full(3, 1 / 3), test), "prior": _constant_row(shares, test)}
    for features in ("tfidf", "frozen"):
        rows[features] = _judge_row(features, train, test)
        print(f"  {features}: {rows[features]}", flush=True)
    budget = dict(epochs=args.epochs, max_length=args.max_length)
    rows["finetune"] = finetune_row(train, test, **budget)
    print(f"  finetune: {rows['finetune']}", flush=True)
    if args.lpft:
        rows["finetune+lp"] = finetune_row(train, test, warm_start=True, **budget)
        print(f"  finetune+lp: {rows['finetune+lp']}", flush=True)

    print(f"\nfine-tuning budget: {args.epochs:g} epoch(s), {args.max_length} tokens per side, batch 16, "
          f"lr 5e-5 (head 5e-4), CPU\n")
    print("| judge | held-out log loss | accuracy | seconds |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['log_loss']:.4f} | {row['accuracy']:.3f} | {row['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
