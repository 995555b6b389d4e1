"""The fine-tuning loop: a model, a loss, batches, and a `FinetuneConfig`.

Why a plain PyTorch loop driven by `accelerate.Accelerator` and not `transformers.Trainer` or a
sentence-transformers trainer: the judges' heads are custom modules with custom losses (soft
cross-entropy over A/B/tie with swap augmentation, masked BCE per safety category, Bradley-Terry,
metric-conditioned regression), and validation must be the judge's own metric. Accelerate gives the
parts worth not writing again — device placement, mixed precision, gradient accumulation, DDP /
multi-machine through `accelerate launch`, gathering metrics across processes — and leaves the loop
readable in one screen. Checkpoints (safetensors + JSON, never pickles): `referee.train.checkpoint`.

The loop knows no judge: a judge hands it a model, batches, a loss and an evaluator.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup

from referee.errors import UserError
from referee.io import write_json
from referee.progress import bar as progress_bar
from referee.train.checkpoint import load_weights, optimizer_state, read_state, save_checkpoint
from referee.train.config import FinetuneConfig


class LossEvaluator:
    """The validation metric when a judge gives none: the loss over the whole validation set."""

    primary = "loss"
    greater_is_better = False

    def __init__(self, loss_fn: Callable):
        self.loss_fn = loss_fn

    def __call__(self, outputs, targets) -> dict[str, float]:
        return {"loss": float(self.loss_fn(outputs, targets))}


@dataclass
class TrainResult:
    """What a run did. `history` has one row per optimizer update (step, epoch, loss, lr), with
    `valid_<metric>` keys on the rows where the model was evaluated."""

    history: list[dict] = field(default_factory=list)
    steps: int = 0
    best_step: int | None = None
    best_metric: float | None = None
    metric: str = "loss"
    stopped_early: bool = False
    seconds: float = 0.0
    output_dir: str | None = None

    def summary(self) -> str:
        best = (f"best valid {self.metric} {self.best_metric:.4f} at step {self.best_step}"
                if self.best_metric is not None else "no validation data")
        stop = ", stopped early" if self.stopped_early else ""
        where = f"; checkpoints in {self.output_dir}" if self.output_dir else ""
        return f"fine-tuned {self.steps} steps in {self.seconds:.0f}s{stop}; {best}{where}"


def resolve_mixed_precision(setting: str) -> str:
    """'auto' -> 'bf16' on a GPU that has it, 'fp16' on other GPUs, 'no' on CPU."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _param_groups(model: torch.nn.Module, config: FinetuneConfig) -> list[dict]:
    """AdamW groups: parameters under `head.` learn at head_lr (default 10 x lr), the rest at lr;
    biases and normalisation weights get no weight decay."""
    head_lr = config.head_lr or 10 * config.lr
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.startswith("head.")
        no_decay = param.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((is_head, no_decay), []).append(param)
    return [{"params": params, "lr": head_lr if is_head else config.lr,
             "weight_decay": 0.0 if no_decay else config.weight_decay}
            for (is_head, no_decay), params in sorted(groups.items())]


# --- the loop ----------------------------------------------------------------------------------

def train(model: torch.nn.Module, train_data, collate: Callable, loss_fn: Callable, config: FinetuneConfig,
          *, valid_data=None, evaluator=None, desc: str = "fine-tuning") -> TrainResult:
    """Train `model` on `train_data`; on return it holds the best weights seen (by the validation
    metric), or the last ones when there is no validation data.

    train_data / valid_data: sequences of examples; collate(list of examples) -> (inputs, targets),
      where inputs is a dict of model arguments (tensors or nested dicts/lists of tensors).
    loss_fn(outputs, targets) -> scalar tensor, where outputs = model(**inputs).
    evaluator(outputs, targets) -> dict[str, float] over the whole validation set, with attributes
      `primary` (the metric name) and `greater_is_better`; default: the validation loss.
    """
    if len(train_data) == 0:
        raise UserError("fine-tuning: no training examples")
    start_time = time.perf_counter()
    set_seed(config.seed)
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(config.mixed_precision),
        gradient_accumulation_steps=config.grad_accumulation,
        # A seedable sampler gives every process, and a resumed run, the same order for each epoch.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    if accelerator.num_processes > 1 and not config.output_dir:
        raise UserError("fine-tuning on several processes: set output_dir to a folder every process can read "
                        "(the best checkpoint is loaded back from it)")
    evaluator = evaluator or LossEvaluator(loss_fn)
    output_dir = Path(config.output_dir or tempfile.mkdtemp(prefix="referee-finetune-"))

    train_loader = DataLoader(list(train_data), batch_size=config.batch_size, shuffle=True, collate_fn=collate)
    valid_loader = (DataLoader(list(valid_data), batch_size=config.eval_batch_size or 2 * config.batch_size,
                               collate_fn=collate) if valid_data is not None and len(valid_data) else None)
    optimizer = torch.optim.AdamW(_param_groups(model, config), lr=config.lr)

    # Updates per epoch on each process, after sharding across processes.
    updates_per_epoch = math.ceil(math.ceil(len(train_loader) / accelerator.num_processes) / config.grad_accumulation)
    total = max(1, math.ceil(config.epochs * updates_per_epoch))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    # Stepped by hand once per update (not prepared), so no per-process step scaling applies.
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(config.warmup_ratio * total), total)

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
             "evals_without_improvement": 0, "history": [], "metric": evaluator.primary}
    resume = None
    if config.resume_from:
        resume = read_state(config.resume_from)
        load_weights(model, config.resume_from)
        state.update({k: resume[k] for k in state})

    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if valid_loader is not None:
        valid_loader = accelerator.prepare(valid_loader)
    if resume is not None:
        tensors = load_file(str(Path(config.resume_from) / "optimizer.safetensors"))
        optimizer.load_state_dict(optimizer_state(tensors, resume["optimizer"]))
        scheduler.load_state_dict(resume["scheduler"])
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])

    def better(value: float) -> bool:
        best = state["best_metric"]
        if best is None:
            return True
        gain = value - best if evaluator.greater_is_better else best - value
        return gain > config.min_delta

    def checkpoint(name: str) -> None:
        # Every process waits, the main one writes: one copy of the files, none half-written.
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_checkpoint(output_dir / name, accelerator.unwrap_model(model), optimizer, scheduler, state)
        accelerator.wait_for_everyone()

    def evaluate() -> bool:
        """Evaluate, record, checkpoint; True when patience has run out."""
        if valid_loader is None:
            checkpoint("last")
            return False
        model.eval()
        outputs, targets = [], []
        with torch.no_grad():
            for inputs, target in valid_loader:
                out = model(**inputs)
                # gather_for_metrics drops the samples repeated to even out the last batch.
                outputs.append(accelerator.gather_for_metrics(_float(out)))
                targets.append(accelerator.gather_for_metrics(target))
        model.train()
        metrics = evaluator(_concat(outputs), _concat(targets))
        value = metrics[evaluator.primary]
        state["history"][-1].update({f"valid_{k}": v for k, v in metrics.items()})
        improved = better(value)
        if improved:
            state.update(best_metric=value, best_step=state["step"], evals_without_improvement=0)
        else:
            state["evals_without_improvement"] += 1
        bar.set_postfix({f"valid_{evaluator.primary}": f"{value:.4f}"}, refresh=False)
        checkpoint("last")
        if improved:
            checkpoint("best")
        return config.patience is not None and state["evals_without_improvement"] >= config.patience

    model.train()
    bar = progress_bar(total=total, initial=state["step"], desc=desc, unit="step",
                       enabled=config.progress and accelerator.is_local_main_process)
    stopped_early, losses = False, []
    done = state["step"] >= total
    while not done:
        train_loader.set_epoch(state["epoch"])
        loader = train_loader
        if state["batches_in_epoch"]:  # resuming mid-epoch: skip what was already trained on
            loader = accelerator.skip_first_batches(train_loader, state["batches_in_epoch"])
        for inputs, targets in loader:
            with accelerator.accumulate(model):
                loss = loss_fn(model(**inputs), targets)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            losses.append(loss.detach())
            state["batches_in_epoch"] += 1
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: the schedule waits too
                scheduler.step()
            state["step"] += 1
            mean_loss = accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()
            losses = []
            state["history"].append({"step": state["step"], "epoch": round(state["epoch"] + state["batches_in_epoch"]
                                                                             / len(train_loader), 4),
                                     "loss": mean_loss, "lr": scheduler.get_last_lr()[0]})
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
            at_end = state["step"] >= total
            if (config.eval_every and state["step"] % config.eval_every == 0) or at_end:
                stopped_early = evaluate() and not at_end
                if stopped_early or at_end:
                    done = True
                    break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
            if not config.eval_every and state["history"] and "valid_" + evaluator.primary not in state["history"][-1]:
                if evaluate():
                    stopped_early = done = True
    bar.close()

    unwrapped = accelerator.unwrap_model(model)
    if state["best_step"] is not None and state["best_step"] != state["step"]:
        accelerator.wait_for_everyone()
        load_weights(unwrapped, output_dir / "best")
    unwrapped.eval()
    result = TrainResult(history=state["history"], steps=state["step"], best_step=state["best_step"],
                         best_metric=state["best_metric"], metric=evaluator.primary, stopped_early=stopped_early,
                         seconds=time.perf_counter() - start_time, output_dir=str(output_dir))
    if config.output_dir and accelerator.is_main_process:
        write_json(output_dir / "history.json", result.__dict__)
    elif not config.output_dir:  # nobody asked for the checkpoints: do not leave them in /tmp
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(output_dir, ignore_errors=True)
        result.output_dir = None
    if config.progress:
        accelerator.print(result.summary())
    accelerator.free_memory()
    return result


def _float(x):
    """Outputs in float32 (mixed precision may give half floats), in whatever nesting they come."""
    if torch.is_tensor(x):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_float(v) for v in x)
    if isinstance(x, dict):
        return {k: _float(v) for k, v in x.items()}
    return x


def _concat(parts: list):
    """Concatenate batches along the first axis, keeping the nesting (tensor, tuple or dict)."""
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat([p.cpu() for p in parts])
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    raise TypeError(f"cannot concatenate model outputs of type {type(first).__name__}")
