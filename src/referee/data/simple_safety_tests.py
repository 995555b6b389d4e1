"""SimpleSafetyTests CSV (`id, harm_area, counter, category, prompts_final`) -> PromptExample.

100 clearly unsafe prompts in 5 harm areas: every label is "unsafe", the harm area is the category.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import LoadResult, base_name, collect, csv_header, read_csv, text_field
from referee.data.xstest_prompts import check_columns
from referee.schema import Conversation, PromptExample

COLUMNS = ("id", "harm_area", "prompts_final")


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".csv"):
        return "not a .csv file"
    missing = [c for c in COLUMNS if c not in csv_header(path)]
    return f"no column(s) {', '.join(missing)}" if missing else True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    header, rows = read_csv(path)
    check_columns(path, header, COLUMNS)

    def make(row: dict, index: int) -> PromptExample:
        return PromptExample(id=text_field(row, "id").strip(), source="simple_safety_tests", language="en",
                             conversation=Conversation.from_text(text_field(row, "prompts_final")),
                             category=row["harm_area"].strip() or None, label="unsafe")

    return collect(path, "simple_safety_tests", "prompts", rows, make, on_error)
