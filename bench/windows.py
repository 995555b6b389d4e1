"""Whole-text frozen features against truncation, on Arena and HH-RLHF: does reading every token help?

MiniLM reads 256 tokens; a rendered conversation puts the context first, so on long prompts the
truncated text barely reaches the response. Here each text is encoded as up to `--windows` overlapping
256-token windows spread over the whole rendered text, pooled [mean, max]; truncation is the first
window alone (the very tokens the model reads when it truncates, so its embeddings come from the same
cache). Both feed the same logistic pair judge (`speed.pair_cv`: [e(A) - e(B), e(A) * e(B)],
swap-augmented, grouped 5-fold CV by prompt), in one run.

    .venv/bin/python bench/windows.py                         # 400 Arena pairs, 600 HH pairs, int8 ONNX
    .venv/bin/python bench/windows.py --arena 800 --hh 1800 --backend torch

Embeddings go to the user cache (windows are cached like any text), so a rerun encodes nothing.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from speed import DATA, pair_cv


def main(argv=None):
    parser = argparse.ArgumentParser(description="whole-text windows vs truncation for frozen features")
    parser.add_argument("--arena", type=int, default=400, help="Arena pairs (first n of train.csv)")
    parser.add_argument("--hh", type=int, default=600, help="HH-RLHF harmless pairs (first n)")
    parser.add_argument("--windows", type=int, default=8, help="most windows per text")
    parser.add_argument("--backend", default="onnx-int8", help="encoder backend: torch, onnx or onnx-int8")
    a = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from referee.data import load
    from referee.encoders.frozen import FrozenEncoder
    from referee.text import render

    print(f"MiniLM ({a.backend}), up to {a.windows} windows of 256 tokens, a quarter overlapping; logistic pair "
          "judge, grouped 5-fold CV by prompt\n")
    print("| data | pairs | windows per text (mean / max) | features | log loss (± se) | accuracy |")
    print("|---|---|---|---|---|---|")
    sets = (("Arena", DATA / "arena" / "train.csv", a.arena), ("HH-RLHF harmless", DATA / "hh_rlhf_harmless" / "train.jsonl.gz", a.hh))
    for name, path, n in sets:
        pairs = load(path).examples[:n]
        texts = [render(p.a) for p in pairs] + [render(p.b) for p in pairs]
        whole = FrozenEncoder("minilm", backend=a.backend, windows=a.windows)
        spans = [whole._split(t) for t in texts]
        start = time.perf_counter()
        pooled = whole.transform(texts)
        seconds = time.perf_counter() - start
        first = FrozenEncoder("minilm", backend=a.backend, progress=False).transform([s[0] for s in spans])
        counts = np.array([len(s) for s in spans])
        for features, x in (("truncation (first 256 tokens)", first), ("whole text, windows [mean, max]", pooled)):
            r = pair_cv(pairs, x[:n], x[n:])
            print(f"| {name} | {n} | {counts.mean():.2f} / {counts.max()} | {features} | "
                  f"{r['log_loss']:.4f} ± {r['se']:.4f} | {r['accuracy']:.3f} |")
        print(f"| {name} | | | (encoding {counts.sum():,} windows of {len(texts)} texts: {seconds:.0f} s, "
              f"{whole.texts_encoded:,} not cached) | | |")


if __name__ == "__main__":
    main()
