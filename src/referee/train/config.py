"""The one configuration of a fine-tuning run: every field has a one-line help and is checked on
construction, so a bad YAML file or flag fails before any model is loaded.

    >>> FinetuneConfig(lr=3e-5, epochs=2).epochs
    2.0
    >>> FinetuneConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    ConfigError: FinetuneConfig: field 'batch_size': expected an integer >= 1, got 0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from referee.errors import UserError

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


class ConfigError(UserError, ValueError):
    """A config value that cannot work: names the field, the bad value and what was expected."""


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class FinetuneConfig:
    """How a transformer judge is fine-tuned end to end (see `referee.train.loop.train`)."""

    encoder: str | None = _help("HF model path or hub name of the backbone; None = the packaged all-MiniLM-L6-v2", None)
    cross_encoder: bool = _help("pairs: read A and B in one sequence instead of a shared (siamese) backbone", False)
    max_length: int = _help("tokens per text (per side for a siamese pair, both sides for a cross-encoder)", 256)
    warm_start: bool = _help("train the head on frozen features first, then fine-tune everything (LP-FT)", False)
    lr: float = _help("peak learning rate of the backbone (AdamW)", 3e-5)
    head_lr: float | None = _help("peak learning rate of the head; None = 10 x lr (a fresh head learns faster)", None)
    batch_size: int = _help("examples per device per step", 16)
    eval_batch_size: int | None = _help("examples per device per evaluation step; None = 2 x batch_size", None)
    grad_accumulation: int = _help("steps whose gradients add up before each optimizer update", 1)
    epochs: float = _help("passes over the training data (fractions allowed: 0.5 = half an epoch)", 3.0)
    max_steps: int | None = _help("stop after this many optimizer updates, whatever epochs says", None)
    warmup_ratio: float = _help("share of the updates over which the learning rate rises linearly from 0", 0.1)
    weight_decay: float = _help("AdamW weight decay (not applied to biases and LayerNorm weights)", 0.01)
    max_grad_norm: float | None = _help("clip the gradient norm to this; None = no clipping", 1.0)
    mixed_precision: str = _help("'auto' (bf16 or fp16 on a GPU that has it, else none), 'no', 'fp16' or 'bf16'", "auto")
    eval_every: int | None = _help("evaluate (and checkpoint) every N updates; None = at the end of each epoch", None)
    patience: int | None = _help("stop after this many evaluations without improvement; None = never stop early", 3)
    min_delta: float = _help("an improvement smaller than this does not reset the patience", 0.0)
    seed: int = _help("seed of the head's initialisation, the data order and dropout", 0)
    output_dir: str | None = _help("where checkpoints go (best/ and last/); None = a temporary folder", None)
    resume_from: str | None = _help("a checkpoint folder (output_dir/best or output_dir/last) to continue from", None)
    progress: bool = _help("show tqdm progress bars", True)

    def __post_init__(self):
        def bad(name, expected):
            raise ConfigError(f"FinetuneConfig: field {name!r}: expected {expected}, got {getattr(self, name)!r}")

        def integer(name, low, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                bad(name, f"an integer >= {low}" + (" or null" if optional else ""))

        def number(name, low, high=float("inf"), optional=False, open_low=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bad(name, "a number" + (" or null" if optional else ""))
            if value < low or value > high or (open_low and value == low):
                bracket = "(" if open_low else "["
                bad(name, f"a number in {bracket}{low}, {high}]")
            setattr(self, name, float(value))

        integer("max_length", 8)
        number("lr", 0.0, open_low=True)
        number("head_lr", 0.0, open_low=True, optional=True)
        integer("batch_size", 1)
        integer("eval_batch_size", 1, optional=True)
        integer("grad_accumulation", 1)
        number("epochs", 0.0, open_low=True)
        integer("max_steps", 1, optional=True)
        number("warmup_ratio", 0.0, 1.0)
        number("weight_decay", 0.0)
        number("max_grad_norm", 0.0, open_low=True, optional=True)
        if self.mixed_precision not in MIXED_PRECISION:
            bad("mixed_precision", f"one of {MIXED_PRECISION}")
        integer("eval_every", 1, optional=True)
        integer("patience", 1, optional=True)
        number("min_delta", 0.0)
        integer("seed", 0)
        for name in ("encoder", "output_dir", "resume_from"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                bad(name, "a non-empty path or name, or null")
        for name in ("cross_encoder", "warm_start", "progress"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> FinetuneConfig:
        """The fields set in a YAML mapping, then `overrides` (flags given on the command line) on top.

        Unknown keys are an error, not silently ignored: a typo would otherwise train with a default.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
        data = data.get("finetune", data)  # a shared config file may keep these under `finetune:`
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown field(s) {unknown}; known fields: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """field name -> one-line help (for the CLI and the README)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}
