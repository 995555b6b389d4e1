"""What every judge shares: arguments, features, save / load, and the checks on its input.

A judge folder holds `judge.json` (task, format version, arguments, small learned state),
`weights.safetensors` (the head's tensors) and `encoder/` (the feature backend's own files). Nothing
is pickled: a server can load a judge it did not train without running code from it.

Feature backends (`features=`):
- "tfidf": `referee.encoders.tfidf.TfidfEncoder` + a linear head fitted by scikit-learn;
- "frozen": `referee.encoders.frozen.FrozenEncoder` (cached embeddings) + a torch head (`heads.py`);
- "finetune": a transformer trained end to end under the same torch heads. Training lives in the
  fine-tune backend (`referee.train.judges`); once trained, its encoder answers `transform`
  like a frozen one, so prediction, save and load go through the same code as "frozen".
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from referee import __version__
from referee.errors import UserError
from referee.schema import Conversation
from referee.text import render

FORMAT_VERSION = 1  # bump when a judge folder changes shape; loaders refuse newer folders
FEATURES = ("tfidf", "frozen", "finetune")
LENGTH_FEATURES = ("log_chars", "log_words", "log_lines", "log_list_items", "log_code_blocks")

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.MULTILINE)


def length_features(conversations: list[Conversation]) -> np.ndarray:
    """(n, 5) float32 `LENGTH_FEATURES` of each judged response (of the request when there is none).

    >>> [round(float(v), 3) for v in length_features([Conversation.from_text("Hi", "One two\\n- three")])[0]]
    [2.773, 1.609, 1.099, 0.693, 0.0]
    """
    rows = []
    for conv in conversations:
        text = conv.response if conv.response is not None else conv.prompt
        rows.append([len(text), len(text.split()), text.count("\n") + 1, len(_LIST_ITEM.findall(text)),
                     text.count("```") // 2])
    return np.log1p(np.asarray(rows, dtype=np.float64)).astype(np.float32).reshape(len(rows), len(LENGTH_FEATURES))


class Judge:
    """Shared machinery; subclasses set `task`, `example_type` and implement fit / predict."""

    task: str = ""
    example_type: type = object

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, hidden: int = 256,
                 dropout: float = 0.1, lr: float = 1e-3, epochs: int = 200, batch_size: int = 64,
                 patience: int = 10, C: float = 1.0, max_chars: int = 4000, seed: int = 0, progress: bool = True,
                 finetune: dict | None = None):
        self.features = features
        self.encoder = encoder
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.C = C
        self.max_chars = max_chars
        self.seed = seed
        self.progress = progress
        # finetune seam: FinetuneConfig fields for features="finetune" (referee.train.config)
        self.finetune = finetune

    # --- arguments ------------------------------------------------------------------------------

    def get_params(self) -> dict:
        """The constructor arguments, as scikit-learn's `get_params` gives them."""
        names = []
        for klass in type(self).__mro__:
            if "__init__" in vars(klass):
                names += [p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")]
        return {name: getattr(self, name) for name in dict.fromkeys(names)}

    def __repr__(self):
        return f"{type(self).__name__}(features={self.features!r}, encoder={self.encoder!r})"

    def _check_params(self):
        if self.features not in FEATURES:
            raise UserError(f"{type(self).__name__}: features must be one of {FEATURES}, got {self.features!r}")

    # --- input --------------------------------------------------------------------------------

    def _check_examples(self, examples, what: str, labelled: bool) -> list:
        examples = list(examples)
        name = type(self).__name__
        if not examples:
            raise UserError(f"{name}.{what}: no examples given (the data is empty, or every row was skipped)")
        for i, ex in enumerate(examples):
            if not isinstance(ex, self.example_type):
                task = getattr(ex, "task", type(ex).__name__)
                raise UserError(f"{name}.{what}: row {i} (id={getattr(ex, 'id', '?')!r}) is {task} data, but a "
                                f"{self.task} judge needs {self.example_type.__name__} rows; check --format or the task")
        return examples

    def _texts(self, conversations: list[Conversation]) -> list[str]:
        return [render(c, self.max_chars) for c in conversations]

    # --- features ------------------------------------------------------------------------------

    def _new_encoder(self):
        if self.features == "tfidf":
            from referee.encoders.tfidf import TfidfEncoder
            return TfidfEncoder()
        if self.features == "frozen":
            from referee.encoders.frozen import FrozenEncoder
            return FrozenEncoder(self.encoder, progress=self.progress)
        raise UserError(f"{type(self).__name__}: features={self.features!r} has no frozen encoder")

    def _fit_lengths(self, conversations: list[Conversation]) -> None:
        x = length_features(conversations)
        self.length_mean_ = x.mean(0)
        self.length_std_ = x.std(0) + 1e-3

    def _lengths(self, conversations: list[Conversation]) -> np.ndarray:
        """(n, 5) standardised length features (statistics from the training data)."""
        return ((length_features(conversations) - self.length_mean_) / self.length_std_).astype(np.float32)

    def _embed(self, conversations: list[Conversation]):
        """Features of each conversation: sparse (tfidf) or (n, d) float32 (frozen, finetune)."""
        return self.encoder_.transform(self._texts(conversations))

    def _split(self, train: list, valid: list | None) -> tuple[list, list]:
        """The validation data: given, or 10% of train held out (grouped by prompt where the data
        helper's splitter is available) for early stopping, thresholds and the summary."""
        if valid is not None:
            return train, self._check_examples(valid, "fit(valid=...)", labelled=True)
        from referee.data.split import group_key, train_valid_split
        if len({group_key(ex) for ex in train}) < 10:
            return train, train  # too few prompts to hold any out: validate on the training rows
        try:
            return train_valid_split(train, valid_fraction=0.1, seed=self.seed)
        except ValueError:  # scikit-learn's splitter: every label has fewer rows than folds (tiny data)
            return train, train

    def _fit_finetune(self, train: list, valid: list | None):
        """The seam for features="finetune": the fine-tune backend trains a transformer under this
        judge's torch head and sets `encoder_`, `head_` and the judge's other learned state."""
        from referee.train.judges import fit_judge
        return fit_judge(self, train, valid)

    # --- torch heads --------------------------------------------------------------------------

    def _seed(self):
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)

    # --- save / load ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able learned state, named arrays) — each judge adds its own."""
        tensors = {"length_mean": self.length_mean_, "length_std": self.length_std_}
        state = {}
        if hasattr(self, "head_"):
            state["head_args"] = self.head_args_
            tensors.update({f"head.{k}": v.detach().cpu().numpy() for k, v in self.head_.state_dict().items()})
        return state, tensors

    def _set_state(self, state: dict, tensors: dict[str, np.ndarray]) -> None:
        self.length_mean_, self.length_std_ = tensors["length_mean"], tensors["length_std"]
        if "head_args" in state:
            self.head_args_ = state["head_args"]
            self.head_ = self._build_head(**self.head_args_)
            self.head_.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("head.")})
            self.head_.eval()

    def _build_head(self, **kwargs) -> torch.nn.Module:
        raise NotImplementedError

    def _new_head(self) -> torch.nn.Module:
        """A freshly initialised head of `head_args_`, the same for the same seed."""
        torch.manual_seed(self.seed)
        return self._build_head(**self.head_args_)

    def save(self, folder: str | Path) -> Path:
        """Write the judge to `folder`: a finished folder replaces the old one only at the end."""
        if not hasattr(self, "encoder_"):
            raise UserError(f"{type(self).__name__}.save: the judge is not fitted; call fit first")
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        state, tensors = self._state()
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
        try:
            meta = {"task": self.task, "version": FORMAT_VERSION, "referee_version": __version__,
                    "class": type(self).__name__, "params": self.get_params(), "state": state}
            (tmp / "judge.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / "weights.safetensors"))
            self.encoder_.save(tmp / "encoder")
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
                os.replace(folder, old)
                os.replace(tmp, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Judge:
        folder = Path(folder)
        meta = read_judge_json(folder)
        if cls.task and meta["task"] != cls.task:
            raise UserError(f"{folder}: holds a {meta['task']} judge, not a {cls.task} judge; use load_judge")
        for name in ("weights.safetensors", "encoder"):
            if not (folder / name).exists():
                raise UserError(f"{folder}: missing {name}; this judge folder is incomplete (was saving interrupted?)")
        judge = cls(**meta["params"])
        judge.encoder_ = _load_encoder(judge.features, folder / "encoder")
        judge._set_state(meta["state"], load_file(str(folder / "weights.safetensors")))
        return judge


def _load_encoder(features: str, folder: Path):
    if features == "tfidf":
        from referee.encoders.tfidf import TfidfEncoder
        return TfidfEncoder.load(folder)
    if features == "frozen":
        from referee.encoders.frozen import FrozenEncoder
        return FrozenEncoder.load(folder)
    from referee.encoders.finetune import FinetuneEncoder
    return FinetuneEncoder.load(folder)


def read_judge_json(folder: Path) -> dict:
    path = folder / "judge.json"
    if not folder.is_dir():
        raise UserError(f"{folder}: no such judge folder")
    if not path.is_file():
        raise UserError(f"{folder}: missing judge.json; not a referee judge folder (or saving was interrupted)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    for key in ("task", "version", "params", "state"):
        if key not in meta:
            raise UserError(f"{path}: missing field {key!r}")
    if not isinstance(meta["version"], int) or meta["version"] > FORMAT_VERSION:
        raise UserError(f"{path}: written by a newer referee (judge format {meta['version']!r}, this referee "
                        f"{__version__} reads up to {FORMAT_VERSION}); upgrade referee to load it")
    return meta


def linear_state(W: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    return {"linear.W": np.asarray(W, dtype=np.float64), "linear.b": np.asarray(b, dtype=np.float64)}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax whose result does not depend on the order of the columns A and B: the sums run
    (A + B) + rest, and x + y == y + x exactly in floating point, so swapping A and B swaps the
    probabilities bit for bit."""
    z = np.asarray(z, dtype=np.float64)
    top = np.max(z, axis=1, keepdims=True)
    e = np.exp(z - top)
    total = e[:, 0] + e[:, 1]
    for k in range(2, e.shape[1]):
        total = total + e[:, k]
    return e / total[:, None]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))
