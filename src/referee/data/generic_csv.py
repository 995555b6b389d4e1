"""Any CSV file with a column mapping (`--columns prompt=question,response=answer,score=rating`); see
`referee.data.columns` for the roles and how they decide the task."""

from __future__ import annotations

from pathlib import Path

from referee.data import columns as cols
from referee.data.files import LoadResult, base_name, csv_header, read_csv


def sniff(path: Path, mapped: bool = False) -> bool | str:
    if not base_name(path).endswith(".csv"):
        return "not a .csv file"
    if mapped:
        return True
    header = csv_header(path)
    if "prompt" not in header:
        return "no 'prompt' column (map columns with --columns prompt=...,response=...)"
    return True


def load(path: Path, *, columns=None, on_error: str = "raise") -> LoadResult:
    header, rows = read_csv(path)
    mapping = cols.check_mapping(path, cols.parse_columns(columns) or cols.default_mapping(header), header)
    return cols.build(path, "csv", rows, mapping, on_error)
