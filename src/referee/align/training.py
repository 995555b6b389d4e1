"""What SFT and DPO share: preference pairs as TRL's conversational datasets, the LoRA adapter, the
trainer settings, and writing the result atomically with a record of how it was made.

Pairs become conversational rows (lists of chat messages), so that TRL formats them with the
policy's own chat template, the same one `generate` uses:

    SFT: {"prompt": [system?, user, assistant, ..., user], "completion": [assistant chosen]}
    DPO: {"prompt": [...], "chosen": [assistant chosen], "rejected": [assistant rejected]}

The loss covers the completion only (TRL's prompt-completion format).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from referee.align.config import AlignConfig
from referee.encoders.causal_lm import ALIGN_JSON
from referee.data import load
from referee.errors import UserError
from referee.io import check_replaceable, replace_folder
from referee.schema import Conversation, PairExample


class AlignDataError(UserError):
    """Pairs that cannot train a policy: names the file, row and field."""


def messages(turns) -> list[dict]:
    return [{"role": t.role, "content": t.content} for t in turns]


def prompt_messages(conversation: Conversation) -> list[dict]:
    """The system prompt (if any) and every turn before the response, as chat messages."""
    system = [{"role": "system", "content": conversation.system}] if conversation.system else []
    return system + messages(conversation.context)


def read_pairs(config: AlignConfig) -> tuple[list[PairExample], list[str]]:
    """The usable chosen/rejected pairs of `config.data` (first `config.limit`, then `config.heldout` more),
    and why others were left out.

    An empty response stops the run (naming file, row and field): it is a broken row, and training on
    it would teach the policy to say nothing. Ties, unlabelled pairs and (for DPO) pairs whose two
    conversations differ before the response cannot be used and are counted, not hidden."""
    check_replaceable(config.out, ALIGN_JSON, flag=None)  # before training, not after
    result = load(config.data, config.format)
    if result.task != "pair":
        raise AlignDataError(f"{config.data}: read as {result.format} ({result.task} data); alignment needs "
                             "preference pairs (hh_rlhf, arena, pandalm, autoj, llmbar, judgebench, or a pair "
                             "CSV/JSONL with --format)")
    pairs, left_out = [], {"tie or no label": 0, "different context before the responses": 0}
    for row, ex in enumerate(result.examples, start=1):
        for side, field in ((ex.a, "response a (chosen)" if ex.label == "A" else "response a"),
                            (ex.b, "response b (chosen)" if ex.label == "B" else "response b")):
            if not side.response.strip():
                raise AlignDataError(f"{config.data}: row {row} (id {ex.id!r}): field {field!r}: the response is "
                                     "empty; fix the row or remove it")
        if ex.label not in ("A", "B"):
            left_out["tie or no label"] += 1
        elif config.stage == "dpo" and (ex.a.context != ex.b.context or ex.a.system != ex.b.system):
            left_out["different context before the responses"] += 1
        else:
            pairs.append(ex)
        if config.limit and len(pairs) == config.limit + config.heldout:
            break
    if len(pairs) <= config.heldout:
        raise AlignDataError(f"{config.data}: {len(pairs)} usable chosen/rejected pair(s), none left to train on "
                             f"after holding out {config.heldout} ({describe(left_out)} left out)")
    return pairs, [f"{n} pair(s): {why}" for why, n in left_out.items() if n]


def describe(left_out: dict) -> str:
    return ", ".join(f"{n} {why}" for why, n in left_out.items() if n) or "none"


def lora_config(config: AlignConfig):
    """LoRA on every linear layer of the transformer blocks (PEFT finds them), or None with --full."""
    if config.full:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def trainer_settings(config: AlignConfig, output_dir: str, n_pairs: int) -> dict:
    """TrainingArguments fields both TRL configs take; mixed precision where the hardware has it."""
    import torch

    steps = config.max_steps or math.ceil(n_pairs / config.batch_size / config.grad_accum * config.epochs)

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    settings = dict(
        output_dir=output_dir, learning_rate=config.learning_rate(), num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, max_length=config.max_length, seed=config.seed,
        data_seed=config.seed, bf16=bf16, fp16=cuda and not bf16,
        gradient_checkpointing=config.gradient_checkpointing, save_strategy="no", report_to="none",
        logging_steps=max(1, steps // 25), disable_tqdm=not config.progress, warmup_steps=0, lr_scheduler_type="linear",
        dataloader_num_workers=0,
    )
    return settings


def trainable_snapshot(model) -> dict:
    """A copy of every trainable tensor, to measure how far training moved them."""
    return {name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad}


def moved(before: dict, model) -> float:
    """The largest absolute change of any trainable weight since `before`."""
    after = dict(model.named_parameters())
    return max(float((after[name].detach().float() - old).abs().max()) for name, old in before.items())


def finish(trainer, config: AlignConfig, before: dict, started: float, n_pairs: int, left_out: list[str]) -> dict:
    """Write the adapter (or model), tokenizer and align.json atomically to `config.out`; the summary."""
    history = trainer.state.log_history
    losses = [log["loss"] for log in history if "loss" in log]
    if not losses or not all(math.isfinite(x) for x in losses):
        raise UserError(f"align {config.stage}: the training loss is not finite ({losses[-3:]}); lower --lr "
                        "or check the data")
    model = trainer.model
    summary = {
        "stage": config.stage, "policy": config.policy, "pairs": n_pairs, "left_out": left_out,
        "steps": trainer.state.global_step, "loss_first": losses[0], "loss_last": losses[-1],
        "loss_history": losses, "accuracy_history": [log["rewards/accuracies"] for log in history if "loss" in log
                                                     and "rewards/accuracies" in log],
        # DPO: the mean log-likelihood of the chosen and the rejected answers at each logged step
        "logps_history": [[log["logps/chosen"], log["logps/rejected"]] for log in history
                          if "loss" in log and "logps/chosen" in log],
        "heldout_history": [{"step": log["step"], "loss": log["eval_loss"], "accuracy": log["eval_rewards/accuracies"]}
                            for log in history if "eval_rewards/accuracies" in log], "max_weight_change": moved(before, model),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "seconds": round(time.time() - started, 1), "out": str(Path(config.out).resolve()),
        "adapter": not config.full,
    }
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    main = trainer.is_world_process_zero()
    tmp = out.parent / f".{out.name}-partial"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(tmp))  # every process: sharded weights are gathered; the main one writes
        if main:
            (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle: referee never writes or reads those
            trainer.processing_class.save_pretrained(str(tmp))
            record = {"stage": config.stage, "policy": policy_reference(config.policy), "config": config.to_dict(),
                      "summary": {k: v for k, v in summary.items() if not k.endswith("_history")}}
            (tmp / ALIGN_JSON).write_text(json.dumps(record, indent=2))
            replace_folder(tmp, out, ALIGN_JSON, flag=None)  # only a folder referee wrote, or an empty one
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def policy_reference(policy: str) -> str:
    """How align.json names the base policy: folders and files by absolute path, so that the output
    loads from any working directory; hub names and "smollm2" as given."""
    return str(Path(policy).resolve()) if Path(policy).exists() else policy


def print_summary(summary: dict) -> None:
    what = "LoRA adapter" if summary["adapter"] else "model"
    print(f"align {summary['stage']}: {summary['pairs']} pairs, {summary['steps']} steps in {summary['seconds']}s; "
          f"loss {summary['loss_first']:.4f} -> {summary['loss_last']:.4f}; "
          f"{summary['trainable_parameters']:,} trainable parameters (largest change {summary['max_weight_change']:.3g})")
    for line in summary["left_out"]:
        print(f"  left out: {line}")
    print(f"  saved the {what} to {summary['out']}")
