"""LLMBar JSON (an array of `{input, output_1, output_2, label}`, label 1 or 2) -> PairExample.

LLMBar has no ties: label 1 = output_1 is better (A), 2 = output_2 (B). Ids are the 0-based record
position, prefixed with the file's stem ("Natural/3") because LLMBar ships one file per subset.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, collect, json_rows, sniff_json_fields, text_field
from referee.schema import Conversation, PairExample

FIELDS = ("input", "output_1", "output_2", "label")
LABELS = {"1": "A", "2": "B"}


def sniff(path: Path) -> bool | str:
    return sniff_json_fields(path, FIELDS, suffixes=(".json",))


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    stem = path.name.removesuffix(".gz").removesuffix(".json")

    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        label = LABELS.get(str(row.get("label")).strip())
        if label is None:
            raise DataError(f"field 'label': expected 1 (output_1) or 2 (output_2), got {row.get('label')!r}")
        request = text_field(row, "input")
        return PairExample(id=f"{stem}/{index}", source="llmbar", language="en",
                           a=Conversation.from_text(request, text_field(row, "output_1")),
                           b=Conversation.from_text(request, text_field(row, "output_2")), label=label)

    return collect(path, "llmbar", "pair", json_rows(path), make, on_error)
