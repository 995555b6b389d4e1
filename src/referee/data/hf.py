"""Hugging Face datasets by name (`hf:Anthropic/hh-rlhf`) or from a folder saved with `save_to_disk`.

Online, `datasets.load_dataset(NAME, split=...)` fetches the dataset (pass `hf:NAME:SPLIT`, default
train); a local folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` is read with
`datasets.load_from_disk`. Known layouts are recognised from their columns — `chosen`/`rejected`
transcripts as HH-RLHF, the Arena columns as Arena; anything else goes through a column mapping
(`--columns`, see `referee.data.columns`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from referee.data import arena, columns as cols, hh_rlhf
from referee.data.files import DataError, LoadResult, collect
from referee.schema import PairExample


def sniff(path: Path) -> bool | str:
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return True
    return "not a folder saved with datasets' save_to_disk (use hf:NAME for the hub)"


def load(name: str | Path, *, columns=None, on_error: str = "raise") -> LoadResult:
    dataset, label = open_dataset(str(name))
    header = list(dataset.column_names)
    rows = ((f"row {i + 1}", record) for i, record in enumerate(dataset))
    if not columns and {"chosen", "rejected"} <= set(header) and isinstance(dataset[0]["chosen"], str):
        return collect(label, "hf", "pair", rows, lambda row, i: hh_pair(row, i), on_error)
    if not columns and set(arena.TEXT_COLUMNS) <= set(header):
        return collect(label, "hf", "pair", rows, lambda row, i: arena_pair(row), on_error)
    mapping = cols.check_mapping(label, cols.parse_columns(columns) or cols.default_mapping(header), header)
    return cols.build(label, "hf", rows, mapping, on_error)


def open_dataset(name: str):
    """(a datasets.Dataset, a label for messages) for a local saved folder or a hub name[:split]."""
    import datasets

    if Path(name).is_dir():
        try:
            data = datasets.load_from_disk(name)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{name}: not a dataset saved with save_to_disk: {err}") from None
        if isinstance(data, datasets.DatasetDict):
            split = "train" if "train" in data else next(iter(data))
            return data[split], f"{name}[{split}]"
        return data, name
    repo, _, split = name.partition(":")
    split = split or "train"
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        offline = " (offline mode is on: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE)"
    else:
        offline = ""
    try:
        return datasets.load_dataset(repo, split=split), f"hf:{repo}[{split}]"
    except Exception as err:  # datasets raises many kinds (connection, missing repo, missing split)
        raise DataError(f"hf:{name}: cannot load from the Hugging Face hub{offline}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}. Save it with save_to_disk and pass "
                        "the folder instead.") from None


def hh_pair(row: dict, index: int) -> PairExample:
    return PairExample(id=str(index), source="hf", label="A",
                       a=hh_rlhf.parse_transcript(row["chosen"], "chosen"),
                       b=hh_rlhf.parse_transcript(row["rejected"], "rejected"))


def arena_pair(row: dict) -> PairExample:
    text = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in row.items()}
    nulls = [0]
    prompts = arena.turns(text, "prompt", nulls)
    side_a, side_b = arena.turns(text, "response_a", nulls), arena.turns(text, "response_b", nulls)
    labelled = all(c in row for c in arena.WINNER_COLUMNS)
    return PairExample(id=str(row["id"]), source="hf", a=arena.conversation(prompts, side_a),
                       b=arena.conversation(prompts, side_b), label=arena.winner(text) if labelled else None,
                       model_a=row.get("model_a"), model_b=row.get("model_b"))
