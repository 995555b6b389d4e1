"""Auto-J pairwise JSON lines -> PairExample.

Each line: `scenario, label, prompt, "response 1", "response 2"`, label 0 (response 1 better), 1
(response 2 better) or 2 (tie), as a number or a string. Auto-J has no ids: an example's id is its
0-based line position. The scenario (one of Auto-J's 58) is kept in `source` as "autoj/<scenario>".
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, collect, jsonl_rows, sniff_json_fields, text_field
from referee.schema import Conversation, PairExample

FIELDS = ("label", "prompt", "response 1", "response 2")
LABELS = {"0": "A", "1": "B", "2": "tie"}


def sniff(path: Path) -> bool | str:
    return sniff_json_fields(path, FIELDS)


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        label = LABELS.get(str(row.get("label")).strip())
        if label is None:
            raise DataError(f"field 'label': expected 0 (response 1), 1 (response 2) or 2 (tie), got {row.get('label')!r}")
        prompt = text_field(row, "prompt")
        scenario = str(row.get("scenario") or "").strip()
        return PairExample(
            id=str(index), source=f"autoj/{scenario}" if scenario else "autoj",
            a=Conversation.from_text(prompt, text_field(row, "response 1")),
            b=Conversation.from_text(prompt, text_field(row, "response 2")),
            label=label,
        )

    return collect(path, "autoj", "pair", jsonl_rows(path), make, on_error)
