"""What best-of-n's sampling costs: SmolLM2-135M-Instruct answers real training prompts of bench/align.py
(HH-RLHF harmless and Auto-J requests) n times each, three ways, in one run on this CPU:

  transformers        each prompt repeated n times and read n times; transformers' sampler (it sorts the
                      whole 49k vocabulary for top-p and draws an exponential per entry)
  shared prompt       each prompt read once, its attention cache copied n times (referee.align.generate's
                      `prefilled`); transformers' sampler
  shared + sampler    referee's path (`best_of_n.sample`): the shared prompt and TopKTopPSampler, which draws
                      among the top-k alone (the same distribution)

    .venv/bin/python bench/align_sampling.py                   # 8 prompts x 8 answers x 40 tokens, 2 rounds (~4 min)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align import training_prompts  # noqa: E402

from referee.align.best_of_n import sample  # noqa: E402
from referee.align.generate import Decoding, prefilled  # noqa: E402
from referee.align.training import prompt_messages  # noqa: E402
from referee.encoders.causal_lm import load_policy, smollm2_folder  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=8, help="prompts per batch (spread over the 200 training prompts)")
    p.add_argument("--n", type=int, default=8, help="answers per prompt")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2, help="each variant runs once per round, in turn")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def main() -> int:
    args = parse()
    import torch
    from transformers import set_seed

    torch.set_num_threads(args.threads)
    model, tokenizer = load_policy(str(smollm2_folder()))
    model.eval()
    everything = training_prompts(100, seed=1)
    prompts = everything[:: len(everything) // args.prompts][: args.prompts]
    decoding = Decoding(max_new_tokens=args.max_new_tokens, do_sample=True, temperature=0.8, top_p=0.95,
                        batch_size=args.prompts * args.n, seed=0)
    texts = [tokenizer.apply_chat_template(prompt_messages(p.conversation), tokenize=False, add_generation_prompt=True)
             for p in prompts]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    hf_sampler = dict(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k,
                      repetition_penalty=decoding.repetition_penalty, max_new_tokens=decoding.max_new_tokens,
                      pad_token_id=tokenizer.pad_token_id)

    def transformers_own():
        repeated = {k: v.repeat_interleave(args.n, 0) for k, v in enc.items()}
        return model.generate(**repeated, **hf_sampler)

    def shared_prompt():
        return model.generate(**prefilled(model, enc, args.n), **hf_sampler)

    variants = {"transformers": transformers_own, "shared prompt": shared_prompt,
                "shared + sampler": lambda: sample(model, tokenizer, prompts, args.n, decoding, progress=False)}
    seconds = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            set_seed(0)
            t = time.perf_counter()
            with torch.no_grad():
                run()
            seconds[name].append(time.perf_counter() - t)
            print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)

    tokens = enc["attention_mask"].sum(1)
    print(f"\n{args.prompts} prompts ({int(tokens.min())}-{int(tokens.max())} tokens, padded to {enc['input_ids'].shape[1]}) "
          f"x {args.n} answers x {args.max_new_tokens} new tokens, {args.threads} threads, median of {args.rounds} rounds\n")
    base = statistics.median(seconds["transformers"])
    print("| variant | s per batch | answers/s | vs transformers |\n|---|---:|---:|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {args.prompts * args.n / median:.2f} | {base / median:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
