"""Any Parquet file with a column mapping; see `referee.data.columns`."""

from __future__ import annotations

from pathlib import Path

from referee.data import columns as cols
from referee.data.files import DataError, LoadResult


def sniff(path: Path, mapped: bool = False) -> bool | str:
    if path.suffix.lower() != ".parquet":
        return "not a .parquet file"
    if mapped:
        return True
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as err:
        return f"unreadable Parquet: {err}"
    return True if "prompt" in names else "no 'prompt' column (map columns with --columns prompt=...)"


def load(path: Path, *, columns=None, on_error: str = "raise") -> LoadResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: unreadable Parquet: {err}") from None
    header = table.column_names
    mapping = cols.check_mapping(path, cols.parse_columns(columns) or cols.default_mapping(header), header)
    rows = [(f"row {i + 1}", record) for i, record in enumerate(table.to_pylist())]
    return cols.build(path, "parquet", rows, mapping, on_error)
