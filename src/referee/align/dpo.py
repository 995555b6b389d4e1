"""Direct preference optimisation on chosen / rejected pairs, with TRL's DPOTrainer and a LoRA adapter
(or full fine-tuning).

The reference policy is the starting policy: with LoRA, the same weights with the adapter switched
off; an SFT output is merged into its base first, so DPO after SFT is anchored to the SFT policy.
Reference log-probabilities are computed once before training (`precompute_ref_log_probs`), so no
second model is kept in memory.

    summary = train_dpo(AlignConfig(stage="dpo", policy="runs/sft", data="hh.jsonl.gz", out="runs/sft_dpo"))
"""

from __future__ import annotations

import tempfile
import time

from referee.align.config import AlignConfig
from referee.align.policy import load_policy
from referee.align.training import (finish, lora_config, messages, prompt_messages, read_pairs,
                                    trainable_snapshot, trainer_settings)


def dpo_rows(pairs) -> list[dict]:
    """Conversational preference rows: the shared context, the chosen and the rejected response."""
    return [{"prompt": prompt_messages(ex.chosen), "chosen": messages(ex.chosen.turns[-1:]),
             "rejected": messages(ex.rejected.turns[-1:])} for ex in pairs]


def train_dpo(config: AlignConfig) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    started = time.time()
    pairs, left_out = read_pairs(config)
    model, tokenizer = load_policy(config.policy)
    with tempfile.TemporaryDirectory(prefix="referee-dpo-") as scratch:
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**trainer_settings(config, scratch, len(pairs)), beta=config.beta, precompute_ref_log_probs=True),
            train_dataset=Dataset.from_list(dpo_rows(pairs)),
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )
        before = trainable_snapshot(trainer.model)
        trainer.train()
        return finish(trainer, config, before, started, len(pairs), left_out)
