"""Checkpoints of the fine-tuning loop, as safetensors + JSON.

Why by hand: `Accelerator.save_state` pickles the optimizer, scheduler and RNG state; referee keeps
everything as safetensors + JSON (a checkpoint must be loadable without running code from it), so the
optimizer state is flattened into a safetensors file and the scheduler, counters and loss history go
in `state.json`.

A checkpoint folder (`output_dir/best`, `output_dir/last`) holds:
  model.safetensors      the whole model (backbone and head)
  optimizer.safetensors  AdamW moments per parameter, and the RNG state of the main process
  state.json             step, epoch, position in the epoch, best metric, patience left, history,
                         optimizer param groups, scheduler state, the config
It is replaced only when it holds a state.json (or is empty): `referee.io.atomic_folder`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_file, save_model

from referee.errors import UserError
from referee.io import atomic_folder

STATE_FORMAT = "referee-checkpoint/1"
MARKER = "state.json"


def _optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten `optimizer.state_dict()`: tensors by "state.<param>.<key>", the rest as JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict) -> None:
    """Write a checkpoint whole: a crash never leaves a half checkpoint."""
    with atomic_folder(folder, MARKER) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        tensors, optimizer_meta = _optimizer_tensors(optimizer)
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        full = dict(state, format=STATE_FORMAT, optimizer=optimizer_meta, scheduler=scheduler.state_dict())
        (tmp / MARKER).write_text(json.dumps(full, indent=1), encoding="utf-8")


def read_state(folder: str | Path) -> dict:
    """state.json of a checkpoint folder, checked."""
    path = Path(folder) / "state.json"
    if not path.is_file():
        raise UserError(f"{folder}: not a referee checkpoint (no state.json); pass output_dir/best or output_dir/last")
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("format") != STATE_FORMAT:
        raise UserError(f"{path}: format {state.get('format')!r}, expected {STATE_FORMAT!r}")
    return state


def load_weights(model: torch.nn.Module, folder: str | Path) -> None:
    """The model weights of a checkpoint folder, into `model` (same architecture)."""
    path = Path(folder) / "model.safetensors"
    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise UserError(f"{path}: does not fit this model (missing {sorted(missing)[:3]}, "
                        f"unexpected {sorted(unexpected)[:3]}); was it written for another judge or encoder?")
