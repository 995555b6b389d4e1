"""Supervised fine-tuning on the chosen responses of preference pairs, with TRL's SFTTrainer and a
LoRA adapter (or full fine-tuning). The loss covers the response tokens only.

    summary = train_sft(AlignConfig(stage="sft", policy="smollm2", data="hh.jsonl.gz", out="runs/sft"))
"""

from __future__ import annotations

import tempfile
import time

from referee.align.config import AlignConfig
from referee.encoders.causal_lm import load_policy
from referee.align.training import (finish, lora_config, messages, prompt_messages, read_pairs,
                                    trainable_snapshot, trainer_settings)


def sft_rows(pairs) -> list[dict]:
    """Prompt-completion conversational rows: the context, then the chosen response."""
    return [{"prompt": prompt_messages(ex.chosen), "completion": messages(ex.chosen.turns[-1:])} for ex in pairs]


def train_sft(config: AlignConfig) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    started = time.time()
    pairs, left_out = read_pairs(config)
    model, tokenizer = load_policy(config.policy)
    with tempfile.TemporaryDirectory(prefix="referee-sft-") as scratch:
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**trainer_settings(config, scratch, len(pairs)), completion_only_loss=True, packing=False),
            train_dataset=Dataset.from_list(sft_rows(pairs)),
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )
        before = trainable_snapshot(trainer.model)
        trainer.train()
        return finish(trainer, config, before, started, len(pairs), left_out)
