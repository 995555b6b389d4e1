"""A causal LM as a pair judge on PandaLM and Auto-J human labels, beside "longer wins".

For each set: the LM's verdict log-probs with the pair shown both ways round (`CausalLM.pair_verdicts`),
then
- zero-shot accuracy of each order alone and of the swap average (3-way A/B/tie, and 2-way A vs B
  on the pairs people did not call a tie), with 95% bootstrap intervals;
- position bias before and after averaging: swap consistency (same winner both ways round) and
  first-position preference (mean p(first) - p(second); 0 = unbiased);
- calibrated heads under grouped 5-fold CV (multinomial logistic regression, swap-augmented): length
  features alone, the LM's averaged verdicts alone, both; and with `--likelihood` the responses'
  token log-probs (`CausalLM.response_features`) as well;
- the LLM judges shipped with PandaLM (GPT-3.5, PandaLM-7B) on the same rows;
- seconds per pair (both orders), wall and CPU, for the pairs the model actually read this run.
  The CPU is shared with other jobs: CPU seconds are the steadier figure.

    nice -n 10 python bench/llm_judge.py --limit 120 --out bench_out/llm_judge
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from referee.data import autoj, pandalm
from referee.data.split import kfold
from referee.encoders.lm import SWAP, CausalLM, Template, likelihood_ratio, normalise, swap_average
from referee.evaluate.metrics import accuracy, bootstrap_ci, first_position_preference, log_loss, swap_consistency

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LABELS = {"A": 0, "B": 1, "tie": 2}


def load_sets(data: Path, names: list[str], limit: int, seed: int) -> dict[str, list]:
    files = {"PandaLM": lambda: pandalm.load(data / "pandalm" / "testset-v1.dev.json").examples,
             "Auto-J": lambda: autoj.load(data / "autoj" / "pairwise.dev.jsonl").examples}
    out = {}
    for name in names:
        rows = files[name]()
        out[name] = random.Random(seed).sample(rows, min(limit, len(rows))) if limit else rows
    return out


def with_ci(statistic, *arrays) -> str:
    value = float(statistic(*arrays))
    lo, hi = bootstrap_ci(statistic, *arrays, n_boot=1000)
    return f"{value:.3f} [{lo:.2f}, {hi:.2f}]"


def length_features(pairs) -> np.ndarray:
    """(n, 2) antisymmetric and symmetric length terms: log-length difference and its size."""
    d = np.array([np.log1p(len(p.a.response)) - np.log1p(len(p.b.response)) for p in pairs])
    return np.stack([d, np.abs(d)], 1)


def verdict_features(verdicts: np.ndarray) -> np.ndarray:
    """(n, 2): log p(A) - log p(B) (antisymmetric) and log p(tie) - mean(log p(A), log p(B)) (symmetric),
    from the swap-averaged, renormalised verdicts."""
    z = np.log(normalise(swap_average(verdicts)))
    return np.stack([z[:, 0] - z[:, 1], z[:, 2] - (z[:, 0] + z[:, 1]) / 2], 1)


def pointwise_verdicts(lm: CausalLM, template: Template, pairs, rubric: str | None) -> np.ndarray:
    """(n, 2, 3) pseudo verdict log-probs from a rubric judge: each response's expected score, then
    log p(a better), log p(b better), log p(equal) from the score distributions (independent), the
    same rows in both orders (no order effect to average away)."""
    values = np.asarray(template.labels, dtype=float)
    pa = normalise(lm.point_verdicts([p.a for p in pairs], template, metric="helpfulness", rubric=rubric))
    pb = normalise(lm.point_verdicts([p.b for p in pairs], template, metric="helpfulness", rubric=rubric))
    above = values[:, None] > values[None, :]  # (k, k): score i beats score j
    win_a = np.einsum("ni,nj,ij->n", pa, pb, above)
    win_b = np.einsum("ni,nj,ij->n", pb, pa, above)
    tie = np.clip(1 - win_a - win_b, 1e-12, 1)
    first = np.log(np.clip(np.stack([win_a, win_b, tie], 1), 1e-12, 1))
    return np.stack([first, first[:, SWAP]], 1)


def cv_head(pairs, features: np.ndarray, antisymmetric: list[int], labels: np.ndarray) -> np.ndarray:
    """(n, 3) out-of-fold p(A), p(B), p(tie) of a logistic regression on `features`, trained with every
    pair also swapped (antisymmetric columns negated, labels A and B exchanged) and predicted as the
    mean of both orders."""
    flip = np.ones(features.shape[1])
    flip[antisymmetric] = -1
    proba = np.zeros((len(pairs), 3))
    for train, valid in kfold(pairs, k=5, seed=0):
        x = np.concatenate([features[train], features[train] * flip])
        y = np.concatenate([labels[train], np.array(SWAP)[labels[train]]])
        head = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        p = head.predict_proba(features[valid])
        ps = head.predict_proba(features[valid] * flip)[:, SWAP]
        proba[valid] = (p + ps) / 2
    return proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="an HF folder, hub name, .gguf file or smollm2")
    parser.add_argument("--template", default="pair", help="a built-in template name or a YAML file; a point "
                        "template (e.g. prometheus) scores each response and compares the expected scores")
    parser.add_argument("--rubric", default=None, help="point templates: the rubric (default: the template's, "
                        "for the metric 'helpfulness')")
    parser.add_argument("--limit", type=int, default=120, help="pairs per set (0: all)")
    parser.add_argument("--max-tokens", type=int, default=768, help="cap on the judged text per prompt")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: bfloat16 on a GPU or an AMX CPU, else float32)")
    parser.add_argument("--likelihood", action="store_true", help="also the responses' token log-probs")
    parser.add_argument("--out", type=Path, default=Path("bench_out/llm_judge"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=["PandaLM", "Auto-J"], choices=["PandaLM", "Auto-J"])
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding pandalm/ and autoj/")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    lm = CausalLM(args.model, max_tokens=args.max_tokens, batch_size=args.batch_size, dtype=args.dtype)
    lm._load()  # loading is not judging: keep it out of the timing
    template = Template.load(args.template)
    results = {}
    for name, pairs in load_sets(args.data, args.sets, args.limit, args.seed).items():
        labels = np.array([LABELS[p.label] for p in pairs])
        before, wall, cpu = lm.texts_computed, time.perf_counter(), time.process_time()
        if template.kind == "pair":
            verdicts = lm.pair_verdicts(pairs, template)
        else:  # a rubric judge scores each response alone; no order to be biased by
            verdicts = pointwise_verdicts(lm, template, pairs, args.rubric)
        wall, cpu, read = time.perf_counter() - wall, time.process_time() - cpu, lm.texts_computed - before
        if template.kind == "point":
            read *= 2  # two prompts per pair, as for pair templates: keep "per pair" comparable
        shown_first, shown_second = normalise(verdicts[:, 0]), normalise(verdicts[:, 1])
        averaged = normalise(swap_average(verdicts))
        decided = labels != 2
        longer = np.array([[1.0, 0, 0] if len(p.a.response) > len(p.b.response) else [0, 1.0, 0] for p in pairs])
        rows = {
            "LM, A shown first": shown_first,
            "LM, B shown first": shown_second[:, SWAP],
            "LM, both orders averaged": averaged,
            "longer wins": longer,
        }
        table = {}
        for label, proba in rows.items():
            table[label] = {
                "accuracy (3-way)": with_ci(lambda p, y: accuracy(p, y, three_way=True), proba, labels),
                "accuracy (A vs B, no ties)": with_ci(lambda p, y: accuracy(p, y, three_way=False), proba[decided], labels[decided]),
            }
        bias = {
            "before averaging": {"swap consistency": float(swap_consistency(shown_first, shown_second)),
                                 "first-position preference": float(first_position_preference(shown_first, shown_second))},
            "after averaging": {"swap consistency": float(swap_consistency(averaged, averaged[:, SWAP])),
                                "first-position preference": float(first_position_preference(averaged, averaged[:, SWAP]))},
        }
        # Calibrated heads: out-of-fold, grouped by prompt.
        lengths, lm_terms = length_features(pairs), verdict_features(verdicts)
        heads = {"length head": cv_head(pairs, lengths, [0], labels),
                 "LM verdict head": cv_head(pairs, lm_terms, [0], labels),
                 "LM verdict + length head": cv_head(pairs, np.hstack([lm_terms, lengths]), [0, 2], labels)}
        likelihood_cost = None
        if args.likelihood:
            start_wall, start_cpu, start_read = time.perf_counter(), time.process_time(), lm.texts_computed
            fa = lm.response_features([p.a for p in pairs])
            fb = lm.response_features([p.b for p in pairs])
            texts = lm.texts_computed - start_read
            if texts:
                likelihood_cost = {"texts": texts, "wall s per 1000 texts": 1000 * (time.perf_counter() - start_wall) / texts,
                                   "cpu s per 1000 texts": 1000 * (time.process_time() - start_cpu) / texts}
            ratio = np.stack([likelihood_ratio(fa, fb), fa[:, 1] - fb[:, 1], fa[:, 2] - fb[:, 2]], 1)
            heads["LM verdict + likelihood + length head"] = cv_head(
                pairs, np.hstack([lm_terms, lengths, ratio]), [0, 2, 4, 5, 6], labels)
        for label, proba in heads.items():
            table[label] = {
                "accuracy (3-way)": with_ci(lambda p, y: accuracy(p, y, three_way=True), proba, labels),
                "accuracy (A vs B, no ties)": with_ci(lambda p, y: accuracy(p, y, three_way=False), proba[decided], labels[decided]),
                "log loss": with_ci(log_loss, proba, labels),
            }
        if name == "PandaLM":
            for judge, file in (("GPT-3.5 (shipped verdicts)", "gpt-3.5-turbo-testset-v1.dev.json"),
                                ("PandaLM-7B (shipped verdicts)", "pandalm-7b-testset-v1.dev.json")):
                shipped = pandalm.load_judge_predictions(args.data / "pandalm" / file)
                # A verdict the judge failed to give (None) counts as wrong.
                predicted = np.array([LABELS.get(shipped.get(p.id), -1) for p in pairs])
                hit = (predicted == labels).astype(float)
                two_way = (predicted[decided] == labels[decided]).astype(float)
                table[judge] = {"accuracy (3-way)": with_ci(lambda h: h.mean(axis=-1), hit),
                                "accuracy (A vs B, no ties)": with_ci(lambda h: h.mean(axis=-1), two_way)}
        speed = {"pairs": len(pairs), "prompts read": read, "wall s": wall, "cpu s": cpu}
        if read:
            speed.update({"wall s per pair (both orders)": 2 * wall / read, "cpu s per pair (both orders)": 2 * cpu / read})
        results[name] = {"table": table, "position bias": bias, "speed": speed, "likelihood cost": likelihood_cost,
                         "ties": int((labels == 2).sum())}
        print_set(name, results[name], args, lm)
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": results}, indent=1))
    print(f"\nwrote {args.out / 'results.json'}")


def print_set(name: str, result: dict, args, lm) -> None:
    n = result["speed"]["pairs"]
    print(f"\n## {name}: {n} pairs ({result['ties']} human ties), model {args.model}, template {args.template}, "
          f"max {args.max_tokens} tokens, {lm.dtype}, on {lm.device}")
    columns = ["accuracy (3-way)", "accuracy (A vs B, no ties)", "log loss"]
    print(f"| judge | {' | '.join(columns)} |\n|---|{'---|' * len(columns)}")
    for judge, row in result["table"].items():
        print(f"| {judge} | {' | '.join(row.get(c, '') for c in columns)} |")
    print("\n| position bias | swap consistency | first-position preference |\n|---|---|---|")
    for when, row in result["position bias"].items():
        print(f"| {when} | {row['swap consistency']:.3f} | {row['first-position preference']:+.3f} |")
    s = result["speed"]
    if s["prompts read"]:
        print(f"\nspeed: {s['prompts read']} prompts read in {s['wall s']:.0f} s wall, {s['cpu s']:.0f} s CPU: "
              f"{s['wall s per pair (both orders)']:.2f} s wall, {s['cpu s per pair (both orders)']:.2f} s CPU per pair "
              f"(both orders, on {lm.device})")
    else:
        print("\nspeed: every prompt came from the cache (delete the cache folder to time it)")
    if result["likelihood cost"]:
        c = result["likelihood cost"]
        print(f"response log-probs ({c['texts']} texts): {c['wall s per 1000 texts']:.0f} s wall, {c['cpu s per 1000 texts']:.0f} s CPU per 1,000 texts")


if __name__ == "__main__":
    main()
