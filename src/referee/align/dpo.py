"""Direct preference optimisation on chosen / rejected pairs, with TRL's DPOTrainer and a LoRA adapter
(or full fine-tuning).

The reference policy is the starting policy: with LoRA, the same weights with the adapter switched
off; an SFT output is merged into its base first, so DPO after SFT is anchored to the SFT policy.
Reference log-probabilities are computed once before training (`precompute_ref_log_probs`), so no
second model is kept in memory.

    summary = train_dpo(AlignConfig(stage="dpo", policy="runs/sft", data="hh.jsonl.gz", out="runs/sft_dpo"))
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time

from referee.align.config import AlignConfig
from referee.encoders.causal_lm import load_policy
from referee.align.training import (finish, lora_config, messages, prompt_messages, read_pairs,
                                    trainable_snapshot, trainer_settings)


def dpo_rows(pairs) -> list[dict]:
    """Conversational preference rows: the shared context, the chosen and the rejected response."""
    return [{"prompt": prompt_messages(ex.chosen), "chosen": messages(ex.chosen.turns[-1:]),
             "rejected": messages(ex.rejected.turns[-1:])} for ex in pairs]


@contextlib.contextmanager
def compact_lm_head(enabled: bool = True):
    """Inside: TRL's fused LM head scores only the completion tokens, on every device.

    TRL (1.x, `add_fused_lm_head`) projects hidden states onto the 49k vocabulary only where a label is
    set when Triton runs (CUDA, XPU), but at every position elsewhere (prompt and padding too), so that
    Neuron does not recompile for each new number of tokens. A CPU recompiles nothing, and on short
    HH-RLHF answers half the positions are prompt or padding: the head's three passes over them cost
    about a fifth of a step (docs/align.md, bench/align_step.py). The switch is the one name that
    function reads, `trl.trainer.utils._use_triton`; the log-prob kernel keeps its own copy of the name,
    so it still runs its torch path on a CPU."""
    from trl.trainer import utils

    original = utils._use_triton
    if enabled:
        utils._use_triton = lambda device: True
    try:
        yield
    finally:
        utils._use_triton = original


def train_dpo(config: AlignConfig) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    started = time.time()
    pairs, left_out = read_pairs(config)
    pairs, heldout = pairs[:len(pairs) - config.heldout], pairs[len(pairs) - config.heldout:]
    model, tokenizer = load_policy(config.policy)
    settings = trainer_settings(config, "", len(pairs))
    if heldout:
        steps = config.max_steps or math.ceil(len(pairs) / config.batch_size / config.grad_accum * config.epochs)
        settings.update(eval_strategy="steps", eval_steps=config.eval_steps or max(1, steps // 2),
                        per_device_eval_batch_size=config.batch_size)
    # RPO (Pang et al. 2024): DPO trains the margin between chosen and rejected, and often lowers both
    # answers' likelihood; an SFT term on the chosen answers holds them up (TRL's "sft" loss beside
    # "sigmoid"). docs/align.md measures what it does to refusals.
    losses = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, config.sft_weight]) if config.sft_weight else {}
    with tempfile.TemporaryDirectory(prefix="referee-dpo-") as scratch, compact_lm_head():
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**{**settings, "output_dir": scratch}, beta=config.beta, precompute_ref_log_probs=True,
                           **losses),
            train_dataset=Dataset.from_list(dpo_rows(pairs)),
            eval_dataset=Dataset.from_list(dpo_rows(heldout)) if heldout else None,
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )
        before = trainable_snapshot(trainer.model)
        trainer.train()
        return finish(trainer, config, before, started, len(pairs), left_out)
