"""OpenAI moderation samples, JSON lines (plain or .gz) -> SafetyExample over the prompt.

Each line: `prompt` plus 0/1 flags for some of `S, H, V, HR, SH, S3, H2, V2` (spelt out in
`referee.schema.CATEGORY_NAMES`). A missing key means the
category was not annotated: its label is None (unknown), never False. The conversation is the prompt
alone — the text being moderated — with no response.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, first_json_record, jsonl_rows, text_field
from referee.schema import CATEGORY_NAMES, Conversation, SafetyExample

CATEGORIES = tuple(CATEGORY_NAMES)


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith((".jsonl", ".json")):
        return "not a .jsonl file"
    record = first_json_record(path)
    if not isinstance(record, dict) or "prompt" not in record:
        return "first record has no 'prompt'"
    if not any(c in record for c in CATEGORIES):
        return f"first record has none of the categories {', '.join(CATEGORIES)}"
    return True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> SafetyExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        labels = {}
        for category in CATEGORIES:
            value = row.get(category)
            if value is None:
                labels[category] = None
            elif not isinstance(value, bool) and isinstance(value, (int, float)) and value in (0, 1):
                labels[category] = bool(value)
            else:
                raise DataError(f"field {category!r}: expected 0 or 1, got {value!r}")
        return SafetyExample(id=str(index), source="openai_moderation", language="en",
                             conversation=Conversation.from_text(text_field(row, "prompt")), labels=labels)

    return collect(path, "openai_moderation", "safety", jsonl_rows(path), make, on_error)
