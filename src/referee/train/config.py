"""The one configuration of a fine-tuning run: every field has a one-line help and is checked on
construction (`referee.config`), so a bad YAML file or flag fails before any model is loaded.

    >>> FinetuneConfig(lr=3e-5, epochs=2).epochs
    2.0
    >>> FinetuneConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    referee.config.ConfigError: FinetuneConfig: field 'batch_size': expected an integer >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from referee.config import Config, option

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class FinetuneConfig(Config):
    """How a transformer judge is fine-tuned end to end (see `referee.train.loop.train`). A YAML
    file may keep these fields under `finetune:`; on the command line they are `--finetune-*`."""

    yaml_section = "finetune"

    encoder: str | None = option(None, "HF model path or hub name of the backbone; None = the packaged all-MiniLM-L6-v2")
    cross_encoder: bool = option(False, "pairs: read A and B in one sequence instead of a shared (siamese) backbone")
    max_length: int = option(256, "tokens per text (per side for a siamese pair, both sides for a cross-encoder)", low=8)
    warm_start: bool = option(False, "train the head on frozen features first, then fine-tune everything (LP-FT)")
    lr: float = option(3e-5, "peak learning rate of the backbone (AdamW)", low=0, open=True)
    head_lr: float | None = option(None, "peak learning rate of the head; None = 10 x lr (a fresh head learns faster)",
                                   low=0, open=True)
    batch_size: int = option(16, "examples per device per step", low=1)
    eval_batch_size: int | None = option(None, "examples per device per evaluation step; None = 2 x batch_size", low=1)
    grad_accumulation: int = option(1, "steps whose gradients add up before each optimizer update", low=1)
    epochs: float = option(3.0, "passes over the training data (fractions allowed: 0.5 = half an epoch)", low=0, open=True)
    max_steps: int | None = option(None, "stop after this many optimizer updates, whatever epochs says", low=1)
    warmup_ratio: float = option(0.1, "share of the updates over which the learning rate rises linearly from 0",
                                 low=0, high=1)
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights)", low=0)
    max_grad_norm: float | None = option(1.0, "clip the gradient norm to this; None = no clipping", low=0, open=True)
    mixed_precision: str = option("auto", "'auto' (bf16 or fp16 on a GPU that has it, else none), 'no', 'fp16' or 'bf16'",
                                  choices=MIXED_PRECISION)
    eval_every: int | None = option(None, "evaluate (and checkpoint) every N updates; None = at the end of each epoch", low=1)
    patience: int | None = option(3, "stop after this many evaluations without improvement; None = never stop early", low=1)
    min_delta: float = option(0.0, "an improvement smaller than this does not reset the patience", low=0)
    seed: int = option(0, "seed of the head's initialisation, the data order and dropout", low=0)
    output_dir: str | None = option(None, "where checkpoints go (best/ and last/); None = a temporary folder")
    resume_from: str | None = option(None, "a checkpoint folder (output_dir/best or output_dir/last) to continue from")
    progress: bool = option(True, "show tqdm progress bars")
