"""XSafety multilingual safety prompts -> PromptExample (label None: every prompt probes safety, but
not every prompt is itself unsafe).

One headerless file per category, one prompt per row (CSV; Bengali ships as XLSX), in one folder per
language: `xsafety/en/Insult_n.csv`, `xsafety/hi/Insult.csv`, `xsafety/bn/Insult_n.xlsx`. The category
comes from the file name (suffixes `_n`, `_en` dropped; the Hindi `commen_sense` spelling read as
commonsense), the language from the folder. Pass one file, a language folder, or the xsafety folder.
Ids are `<language>/<file stem>/<row>`. Empty cells after the prompt (trailing commas) are ignored.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from referee.data.files import DataError, LoadResult, collect, head, read_text
from referee.schema import Conversation, PromptExample

LANGUAGES = ("en", "zh", "hi", "bn", "ar", "ru", "ja", "de", "fr", "sp", "es")
SUFFIX = re.compile(r"_(n|en)$")
SPELLING = {"commen_sense": "commonsense"}
EXTENSIONS = (".csv", ".xlsx")


def files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() in EXTENSIONS else []
    found = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS)
    return found


def sniff(path: Path) -> bool | str:
    found = files(path)
    if not found:
        return "no .csv or .xlsx files"
    if any(f.parent.name.lower() not in LANGUAGES for f in found):
        return f"not in a language folder ({', '.join(LANGUAGES)}) as XSafety ships"
    probe = found[0]
    if probe.suffix.lower() == ".csv":
        first = head(probe, 4096).split("\n", 1)[0]
        if "," in first.strip().rstrip(",") and not first.lstrip().startswith('"'):
            return "first line looks like a CSV header or several fields, not one prompt"
    return True


def category(path: Path) -> str:
    stem = SUFFIX.sub("", path.stem)
    return SPELLING.get(stem.lower(), stem.lower())


def read_prompts(path: Path) -> list[str | None]:
    """The first cell of every row (headerless); None for an empty row. Cells after the first must be
    empty (several files end rows with stray commas)."""
    if path.suffix.lower() == ".xlsx":
        import pandas as pd  # only for XLSX: openpyxl through pandas

        try:
            table = pd.read_excel(path, header=None, dtype=str, engine="openpyxl")
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: cannot read: {err}") from None
        rows = [[("" if pd.isna(v) else str(v)) for v in values] for values in table.itertuples(index=False)]
    else:
        csv.field_size_limit(1 << 30)
        try:
            rows = list(csv.reader(io.StringIO(read_text(path))))
        except csv.Error as err:
            raise DataError(f"{path}: unreadable CSV: {err}") from None
    prompts = []
    for n, cells in enumerate(rows, start=1):
        if not cells:  # a blank line is not a row
            continue
        if any(c.strip() for c in cells[1:]):
            raise DataError(f"{path}: row {n}: text after the first column; XSafety files hold one prompt per row")
        prompts.append(cells[0] if cells and cells[0].strip() else None)
    return prompts


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    rows = []
    for file in files(path):
        for n, text in enumerate(read_prompts(file), start=1):
            rows.append((f"{file.relative_to(path) if path.is_dir() else file.name}: row {n}", (file, n, text)))

    def make(raw, index: int) -> PromptExample:
        file, n, text = raw
        if text is None:
            raise DataError("empty prompt")
        language = file.parent.name.lower()
        return PromptExample(id=f"{language}/{file.stem}/{n}", source="xsafety", language=language,
                             conversation=Conversation.from_text(text.strip()), category=category(file))

    return collect(path, "xsafety", "prompts", rows, make, on_error)
