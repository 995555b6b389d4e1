"""Any JSON-lines file (.jsonl, .json lines, optionally .gz) or JSON array of records with a column
mapping; see `referee.data.columns`."""

from __future__ import annotations

from pathlib import Path

from referee.data import columns as cols
from referee.data.files import DataError, LoadResult, base_name, first_json_record, head, json_rows, jsonl_rows


def sniff(path: Path, mapped: bool = False) -> bool | str:
    if not base_name(path).endswith((".jsonl", ".json", ".ndjson")):
        return "not a .jsonl or .json file"
    record = first_json_record(path)
    if not isinstance(record, dict):
        return "first record is not a JSON object"
    if not mapped and "prompt" not in record:
        return "no 'prompt' field (map fields with --columns prompt=...,response=...)"
    return True


def load(path: Path, *, columns=None, on_error: str = "raise") -> LoadResult:
    rows = list(json_rows(path) if head(path, 4096).lstrip().startswith("[") else jsonl_rows(path))
    if not rows:
        raise DataError(f"{path}: no rows")
    first = first_json_record(path)
    header = list(first) if isinstance(first, dict) else []
    mapping = cols.check_mapping(path, cols.parse_columns(columns) or cols.default_mapping(header), header)
    return cols.build(path, "jsonl", rows, mapping, on_error)
