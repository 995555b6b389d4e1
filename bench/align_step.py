"""Where the time of one DPO step goes: SmolLM2-135M-Instruct + LoRA (r=16, every linear layer) on
real HH-RLHF pairs, TRL's DPOTrainer, this CPU. Each variant changes one thing against the fast
setting; the matmul limit (the step's FLOPs at the GEMM rate measured here, same run) is printed
beside it.

    nice -n 10 .venv/bin/python bench/align_step.py              # ~10 min on 2 shared cores
    nice -n 10 .venv/bin/python bench/align_step.py --steps 2 --variants fast default

FLOPs of a step (LoRA: the frozen weights need no weight gradient, so the backward pass costs about
one forward; the LoRA matrices are < 2% of it and left out):
  backbone  2 x (2 x non-embedding parameters) per token, every position
  LM head   3 x (2 x hidden x vocab) per scored position (forward, TRL's recompute, input gradient)
  reference another backbone + head forward per token when not precomputed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align import DATA, ROOT, short_single_turn_pairs  # noqa: E402

from referee.align.config import AlignConfig  # noqa: E402
from referee.align.dpo import compact_lm_head, dpo_rows  # noqa: E402
from referee.encoders.causal_lm import load_policy, smollm2_folder  # noqa: E402
from referee.align.training import lora_config, read_pairs, trainer_settings  # noqa: E402

# name -> (what changes, settings): the fast setting first, then one change each
VARIANTS = {
    "fast": ("1 thread, compact head, no LoRA dropout, precomputed reference, max_length 128", {}),
    "2 threads": ("torch.set_num_threads(2)", {"threads": 2}),
    "full head": ("TRL's CPU default: the 49k head over every position (prompt, padding too)", {"compact": False}),
    "LoRA dropout": ("lora_dropout 0.05 (a mask and a multiply on the input of all 210 adapted layers)",
                     {"dropout": 0.05}),
    "ref each step": ("reference log-probs computed every step, not once", {"precompute": False}),
    "checkpointing": ("gradient checkpointing on", {"checkpointing": True}),
    "max_length 512": ("pairs up to 512 tokens (longer prompts, more padding)", {"max_length": 512, "long": True}),
    "before": ("the settings before this work together (2 threads, full head, dropout 0.05, max_length 512)",
               {"threads": 2, "compact": False, "dropout": 0.05, "max_length": 512, "long": True}),
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=4, help="pairs per step")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--work", default=str(ROOT / "runs" / "bench-align-step"))
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the op table of the fast variant")
    return p.parse_args()


def gemm_rate(threads: int, tokens: int, hidden: int, inter: int) -> float:
    """GFLOP/s of torch.mm at the backbone's own shapes (tokens x hidden @ hidden x inter)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, inter)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        rates.append(2 * tokens * hidden * inter * 10 / (time.perf_counter() - t) / 1e9)
    return max(rates)


def step_flops(config, tokens: int, scored: int, precompute: bool) -> float:
    embedding = config.vocab_size * config.hidden_size
    backbone = 2 * (config.num_parameters - embedding)
    head = 2 * config.hidden_size * config.vocab_size
    flops = 2 * backbone * tokens + 3 * head * scored
    if not precompute:
        flops += backbone * tokens + head * scored
    return flops


class StepTimer:
    """A TrainerCallback that records the wall time of each optimizer step, and with `profile` runs the
    second step under torch.profiler (its op table is kept in `.ops`)."""

    def __init__(self, profile: bool = False):
        self.times, self._t, self.profile, self.ops, self._prof = [], 0.0, profile, "", None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.profile and len(self.times) == 1:
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._prof.__enter__()
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)
        if self._prof is not None:
            self._prof.__exit__(None, None, None)
            self.ops = self._prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
            self._prof = None

    def __getattr__(self, name):  # every other TrainerCallback event: nothing to do
        return lambda *args, **kwargs: None


def run_variant(settings: dict, pairs_short: Path, pairs_long: Path, args, work: Path) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(settings.get("threads", 1))
    max_length = settings.get("max_length", 128)
    config = AlignConfig(stage="dpo", policy=str(smollm2_folder()), out=str(work / "unused"),
                         data=str(pairs_long if settings.get("long") else pairs_short), max_length=max_length,
                         batch_size=args.batch_size, max_steps=args.steps + 1, limit=args.batch_size * (args.steps + 1),
                         gradient_checkpointing=settings.get("checkpointing", False), progress=False, lr=1e-4,
                         lora_dropout=settings.get("dropout", 0.0))
    pairs, _ = read_pairs(config)
    model, tokenizer = load_policy(config.policy)
    timer = StepTimer(profile=args.profile and not settings)
    trainer_args = DPOConfig(**trainer_settings(config, str(work / "scratch"), len(pairs)), beta=0.1,
                             precompute_ref_log_probs=settings.get("precompute", True))
    started = time.perf_counter()
    with compact_lm_head(settings.get("compact", True)):
        trainer = DPOTrainer(model=model, args=trainer_args, train_dataset=Dataset.from_list(dpo_rows(pairs)),
                             processing_class=tokenizer, peft_config=lora_config(config), callbacks=[timer])
        setup = time.perf_counter() - started
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.train()
    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    tokens, real, scored = ids.numel(), int(attention.sum()), int(completion[:, 1:].sum())
    if not settings.get("compact", True):
        scored = ids[:, 1:].numel()  # the full head scores every position but the last
    if timer.ops:
        print(f"torch.profiler, one step of this variant (the profiler slows it a little):\n{timer.ops}", flush=True)
    return {"step": statistics.median(timer.times[1:]), "setup": setup, "tokens": tokens, "real": real,
            "completion": int(completion.sum()), "scored": scored, "shape": tuple(ids.shape),
            "precompute": settings.get("precompute", True), "threads": settings.get("threads", 1)}


def main() -> int:
    args = parse()
    if not DATA.is_dir():
        print(f"needs the real data at {DATA}", file=sys.stderr)
        return 1
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    n = args.batch_size * (args.steps + 1)
    pairs_short = short_single_turn_pairs(work / "pairs-short.jsonl", n, max_chars=500)
    pairs_long = short_single_turn_pairs(work / "pairs-long.jsonl", n, max_chars=2000)
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(smollm2_folder())
    model, _ = load_policy(str(smollm2_folder()))
    model_config.num_parameters = sum(p.numel() for p in model.parameters())
    del model
    rates = {t: gemm_rate(t, 1024, model_config.hidden_size, model_config.intermediate_size) for t in (1, 2)}
    print(f"GEMM rate (1024x{model_config.hidden_size} @ {model_config.hidden_size}x{model_config.intermediate_size}, "
          f"fp32): 1 thread {rates[1]:.1f} GFLOP/s, 2 threads {rates[2]:.1f} GFLOP/s", flush=True)
    rows = []
    for name in args.variants:
        what, settings = VARIANTS[name]
        # The cores are shared: the GEMM rate is measured again right before and after each variant,
        # and the mean of those two readings sets this variant's limit.
        before = {t: gemm_rate(t, 1024, model_config.hidden_size, model_config.intermediate_size) for t in (1, 2)}
        r = run_variant(settings, pairs_short, pairs_long, args, work)
        after = {t: gemm_rate(t, 1024, model_config.hidden_size, model_config.intermediate_size) for t in (1, 2)}
        rates = {t: (before[t] + after[t]) / 2 for t in (1, 2)}
        print(f"  GEMM rate around it: 1 thread {rates[1]:.1f}, 2 threads {rates[2]:.1f} GFLOP/s", flush=True)
        flops = step_flops(model_config, r["tokens"], r["scored"], r["precompute"])
        limit = flops / (rates[r["threads"]] * 1e9)
        # the same step without padding: real tokens only, at the better of the two GEMM rates
        ideal = step_flops(model_config, r["real"], r["completion"] - r["shape"][0], r["precompute"]) / (max(rates.values()) * 1e9)
        rows.append((name, what, r, flops, limit, ideal))
        print(f"{name}: {r['step']:.2f}s/step, batch {r['shape']}, {r['real']}/{r['tokens']} real tokens, "
              f"{r['completion']} completion, {r['scored']} scored by the head; {flops / 1e9:.0f} GFLOP, "
              f"matmul limit {limit:.2f}s", flush=True)
    print("\n| variant | what changes | s/step | batch (seqs x len) | padding | head positions | GFLOP | "
          "matmul limit (s) | step / limit | step / limit without padding |\n|---|---|---|---|---|---|---|---|---|---|")
    for name, what, r, flops, limit, ideal in rows:
        print(f"| {name} | {what} | {r['step']:.2f} | {r['shape'][0]} x {r['shape'][1]} | "
              f"{1 - r['real'] / r['tokens']:.0%} | {r['scored']} | {flops / 1e9:.0f} | {limit:.2f} | "
              f"{r['step'] / limit:.2f}x | {r['step'] / ideal:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
