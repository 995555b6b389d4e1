"""DPO step time of SmolLM2-shaped policies on a GPU (or this CPU), with TRL's DPOTrainer + LoRA as
`referee align dpo` runs it: bf16 where the GPU has it, 4 pairs x up to 128 tokens per step.

The weights are random (built from each model's published config), because a GPU machine without
network cannot fetch the hub checkpoints; a step's time does not depend on the weights' values.

    python bench/align_gpu.py --pairs PAIRS.jsonl --tokenizer TOKENIZER_DIR --shapes 135M 360M 1.7B
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align_step import StepTimer  # noqa: E402

from referee.align.config import AlignConfig  # noqa: E402
from referee.align.dpo import compact_lm_head, dpo_rows  # noqa: E402
from referee.encoders.causal_lm import load_policy  # noqa: E402
from referee.align.training import lora_config, read_pairs, trainer_settings  # noqa: E402

# HuggingFaceTB/SmolLM2-{135M,360M,1.7B}-Instruct config.json values (Llama architecture, tied embeddings)
SHAPES = {
    "135M": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3),
    "360M": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                 num_key_value_heads=5),
    "1.7B": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                 num_key_value_heads=32),
}


def random_policy(shape: str, tokenizer_dir: str, folder: Path) -> Path:
    """A SmolLM2-shaped policy with random weights, saved as `referee align dpo --policy` reads it: in
    bfloat16 on a GPU, the published checkpoints' dtype, and in float32 on a CPU, the dtype of the
    offline 135M that referee converts from GGUF (transformers loads a folder in its saved dtype)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cuda = torch.cuda.is_available()
    config = LlamaConfig(vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True, rope_theta=100000.0,
                         rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=2, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):  # drawn on the GPU where there is one: 1.7 G random numbers
        LlamaForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32).save_pretrained(folder)
    if cuda:
        torch.cuda.empty_cache()
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def step_time(policy: Path, pairs: str, steps: int, batch_size: int) -> dict:
    """The median step time after one warm-up step, the real (not padding) tokens of a mean step, the
    peak GPU memory of the run and the dtype the trainer computed in."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = AlignConfig(stage="dpo", policy=str(policy), data=pairs, out=str(policy.parent / "unused"),
                         max_length=128, batch_size=batch_size, max_steps=steps + 1,
                         limit=batch_size * (steps + 1), lora_dropout=0.0, progress=False, lr=1e-4)
    rows, _ = read_pairs(config)
    model, tokenizer = load_policy(config.policy)
    timer = StepTimer()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as scratch, compact_lm_head():
        trainer = DPOTrainer(model=model, args=DPOConfig(**trainer_settings(config, scratch, len(rows)), beta=0.1,
                                                         precompute_ref_log_probs=True),
                             train_dataset=Dataset.from_list(dpo_rows(rows)), processing_class=tokenizer,
                             peft_config=lora_config(config), callbacks=[timer])
        batches = list(trainer.get_train_dataloader())
        trainer.train()
    return {"step": statistics.median(timer.times[1:]), "times": timer.times,
            "tokens": sum(int(b["attention_mask"].sum()) for b in batches) / len(batches),
            "peak": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "dtype": "bf16 autocast" if trainer.args.bf16 else "fp16 autocast" if trainer.args.fp16 else "fp32"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", required=True, help="HH-RLHF JSON lines (bench/align.py writes pairs-human.jsonl)")
    p.add_argument("--tokenizer", required=True, help="a folder with SmolLM2's tokenizer")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"| policy shape | device | s/step (median of {args.steps}, after one warm-up) | pairs/s | "
          "tokens/s (real, chosen + rejected) | peak GPU memory | dtype |\n|---|---|---|---|---|---|---|", flush=True)
    for shape in args.shapes:
        with tempfile.TemporaryDirectory() as tmp:
            r = step_time(random_policy(shape, args.tokenizer, Path(tmp) / shape), args.pairs, args.steps,
                          args.batch_size)
        # each step's time (the first is the warm-up), so that compiling kernels for a new shape shows
        print(f"SmolLM2-{shape}, batch {args.batch_size}, step times (s): {' '.join(f'{t:.3f}' for t in r['times'])}",
              file=sys.stderr, flush=True)
        peak = "-" if r["peak"] is None else f"{r['peak']:.1f} GiB"
        print(f"| SmolLM2-{shape} (random weights) | {device} | {r['step']:.3f} | {args.batch_size / r['step']:.1f} | "
              f"{r['tokens'] / r['step']:.0f} | {peak} | {r['dtype']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
