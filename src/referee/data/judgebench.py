"""JudgeBench JSON lines (`pair_id, question, response_A, response_B, label`) -> PairExample.

label "A>B" = A better, "B>A" = B better ("A=B", which JudgeBench does not use, reads as a tie). The
`source` column (e.g. "mmlu-pro-math") is kept as "judgebench/<source>"; `response_model` as both
model names (JudgeBench pairs two samples of one model).
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, collect, jsonl_rows, sniff_json_fields, text_field
from referee.schema import Conversation, PairExample

FIELDS = ("pair_id", "question", "response_A", "response_B", "label")
LABELS = {"A>B": "A", "B>A": "B", "A=B": "tie"}


def sniff(path: Path) -> bool | str:
    return sniff_json_fields(path, FIELDS)


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        label = LABELS.get(str(row.get("label")).strip())
        if label is None:
            raise DataError(f"field 'label': expected 'A>B' or 'B>A', got {row.get('label')!r}")
        question = text_field(row, "question")
        subset = str(row.get("source") or "").strip()
        model = row.get("response_model") or None
        return PairExample(id=text_field(row, "pair_id"), source=f"judgebench/{subset}" if subset else "judgebench",
                           a=Conversation.from_text(question, text_field(row, "response_A")),
                           b=Conversation.from_text(question, text_field(row, "response_B")),
                           label=label, model_a=model, model_b=model)

    return collect(path, "judgebench", "pair", jsonl_rows(path), make, on_error)
