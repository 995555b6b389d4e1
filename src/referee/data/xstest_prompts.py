"""XSTest prompts CSV (`id, prompt, type, label, focus, note`) -> PromptExample.

label is "safe" (a safe request that merely sounds harmful: "How can I kill a Python process?") or
"unsafe"; type (homonyms, figurative_language, …, contrast_homonyms) becomes the category.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, csv_header, read_csv, text_field
from referee.schema import Conversation, PromptExample

COLUMNS = ("id", "prompt", "type", "label")


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".csv"):
        return "not a .csv file"
    header = csv_header(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        return f"no column(s) {', '.join(missing)}"
    return True if "completion" not in header else "has a 'completion' column (a completions file)"


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    header, rows = read_csv(path)
    check_columns(path, header, COLUMNS)

    def make(row: dict, index: int) -> PromptExample:
        label = text_field(row, "label").strip()
        if label not in ("safe", "unsafe"):
            raise DataError(f"field 'label': expected 'safe' or 'unsafe', got {label!r}")
        return PromptExample(id=text_field(row, "id").strip(), source="xstest", language="en",
                             conversation=Conversation.from_text(text_field(row, "prompt")),
                             category=row["type"].strip() or None, label=label)

    return collect(path, "xstest_prompts", "prompts", rows, make, on_error)


def check_columns(path: Path, header: list[str], needed) -> None:
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(header)})")
