"""The configuration of one `referee align sft` or `referee align dpo` run: every field has a one-line
help and is checked on construction, so a bad flag fails before a model is loaded.

    >>> AlignConfig(stage="sft", data="pairs.jsonl", out="runs/sft").learning_rate()
    0.0002
    >>> AlignConfig(stage="dpo", data="x", out="y", beta=0)
    Traceback (most recent call last):
    ...
    referee.align.config.AlignConfigError: AlignConfig: field 'beta': expected a number > 0, got 0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from referee.encoders.causal_lm import DEFAULT_POLICY
from referee.errors import UserError

STAGES = ("sft", "dpo")
# Learning rates that work for LoRA / full fine-tuning of small chat models; DPO moves less than SFT.
DEFAULT_LR = {("sft", False): 2e-4, ("sft", True): 2e-5, ("dpo", False): 5e-5, ("dpo", True): 5e-7}


class AlignConfigError(UserError, ValueError):
    """A setting that cannot work: names the field, the bad value and what was expected."""


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class AlignConfig:
    """What one SFT or DPO run does: which policy, on which pairs, with which adapter and budget."""

    stage: str = _help("sft (train on the chosen responses) or dpo (chosen against rejected)", "sft")
    policy: str = _help(f"causal LM: a folder, a .gguf file, a hub name, an SFT output, or {DEFAULT_POLICY!r} "
                        "(SmolLM2-135M-Instruct, offline)", DEFAULT_POLICY)
    data: str | None = _help("preference pairs: any pair format referee.data.load reads (hh_rlhf, arena, ...)", None)
    format: str | None = _help("data format; None = detect it", None)
    out: str | None = _help("folder to write the adapter (or, with --full, the model) to", None)
    full: bool = _help("full fine-tuning instead of a LoRA adapter", False)
    lora_r: int = _help("LoRA rank", 16)
    lora_alpha: int = _help("LoRA scaling numerator (the update is scaled by alpha / r)", 32)
    lora_dropout: float = _help("dropout on the LoRA input", 0.05)
    lr: float | None = _help("learning rate; None = 2e-4 (SFT, LoRA), 2e-5 (SFT, full), 5e-5 (DPO, LoRA), "
                             "5e-7 (DPO, full)", None)
    epochs: float = _help("passes over the pairs (ignored when max_steps is set)", 1.0)
    max_steps: int | None = _help("optimizer steps; None = as many as epochs take", None)
    batch_size: int = _help("pairs per device and step", 4)
    grad_accum: int = _help("steps whose gradients add up before each update", 1)
    max_length: int = _help("tokens of prompt + response (longer ones lose the end of the response)", 512)
    beta: float = _help("DPO: strength of the pull towards the reference policy", 0.1)
    sft_weight: float = _help("DPO: weight of an SFT term, the chosen answers' mean token NLL, added to the DPO "
                              "loss (RPO); 0 = plain DPO", 0.0)
    limit: int | None = _help("train on the first N usable pairs only (quick runs)", None)
    heldout: int = _help("DPO: hold out the N usable pairs after the training ones; reward accuracy on them "
                         "is measured at eval_steps", 0)
    eval_steps: int | None = _help("DPO with heldout: evaluate every N steps; None = twice per run", None)
    seed: int = _help("seed of data order and adapter initialisation", 0)
    gradient_checkpointing: bool = _help("recompute activations in the backward pass (less memory, ~20%% slower)",
                                         False)
    progress: bool = _help("show progress bars", True)

    def __post_init__(self):
        def bad(name, expected):
            raise AlignConfigError(f"AlignConfig: field {name!r}: expected {expected}, got {getattr(self, name)!r}")

        if self.stage not in STAGES:
            bad("stage", f"one of {STAGES}")
        for name in ("policy", "data", "out"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                bad(name, "a non-empty string")
        for name, low in (("lora_r", 1), ("lora_alpha", 1), ("batch_size", 1), ("grad_accum", 1),
                          ("max_length", 16), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                bad(name, f"an integer >= {low}")
        if isinstance(self.heldout, bool) or not isinstance(self.heldout, int) or self.heldout < 0:
            bad("heldout", "an integer >= 0")
        if self.heldout and self.stage != "dpo":
            bad("heldout", "0 for SFT (held-out reward accuracy is a DPO measure)")
        for name in ("max_steps", "limit", "eval_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                bad(name, "an integer >= 1 or null")
        for name in ("epochs", "beta", "lr"):
            value = getattr(self, name)
            if name == "lr" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                bad(name, "a number > 0")
        if isinstance(self.sft_weight, bool) or not isinstance(self.sft_weight, (int, float)) or self.sft_weight < 0:
            bad("sft_weight", "a number >= 0")
        if self.sft_weight and self.stage != "dpo":
            bad("sft_weight", "0 for SFT (it adds SFT's own loss to DPO's)")
        if not isinstance(self.lora_dropout, (int, float)) or not 0 <= self.lora_dropout < 1:
            bad("lora_dropout", "a number in [0, 1)")
        for name in ("full", "gradient_checkpointing", "progress"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[(self.stage, self.full)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """field name -> one-line help (for the CLI)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}
