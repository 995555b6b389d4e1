"""A data file read a chunk at a time, so that judging a file never holds more than one chunk of it.

    from referee.data.stream import open_stream
    stream = open_stream("logs.jsonl", chunk_rows=2000)
    for chunk in stream.chunks():        # LoadResults of at most 2000 rows each
        chunk.examples, chunk.skipped
    stream.read()                        # share of the input read so far (None: unknown)

Streamed, record by record: CSV and JSON lines (plain or gzipped), Parquet one batch at a time and
Hugging Face datasets in streaming mode, in the formats a log is written in: the column-mapped csv /
jsonl / parquet / hf readers, arena and hh_rlhf. Records become examples through the same code as
`referee.data.load`, row indices included, so a file read in chunks gives the same examples and ids as
read whole. Other formats are small curated sets: they are read whole and handed out in chunks
(`stream.streamed` is False). As in `load`, an id may occur once in the whole input: a repeated id
is a bad row, and bad rows stop the run or, with on_error="skip", are skipped and listed.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Callable, Iterator

from referee.data import NAMED, arena, check_file, columns as cols, detect, generic_for, hf, load
from referee.data.files import DataError, LoadResult, base_name, collect, first_json_record, head, open_text, parse_json_line
from referee.errors import UserError

STREAMED = ("arena", "hh_rlhf", "csv", "jsonl", "parquet", "hf")


@dataclass
class Stream:
    """An input opened for reading in chunks: its raw rows, lazily, and how a chunk of them becomes
    examples (`build(rows, index_of_first_row)`)."""

    label: str  # the file or dataset, as messages name it
    format: str
    streamed: bool  # False: read whole by `load` (not a line format), handed out in chunks
    rows: Iterator[tuple[str, object]]  # (where, record), as the loaders' `collect` takes them
    build: Callable[[list, int], LoadResult]
    read: Callable[[], float | None]  # share of the input read so far, for a progress estimate
    total: int | None = None  # rows, where the source knows them up front (Parquet, saved datasets)
    chunk_rows: int = 2000
    on_error: str = "raise"

    def chunks(self) -> Iterator[LoadResult]:
        """LoadResults of at most `chunk_rows` rows; an id seen in an earlier chunk is a bad row."""
        seen: set[str] = set()
        start = 0
        while rows := list(islice(self.rows, self.chunk_rows)):
            chunk = self.build(rows, start)
            start += len(rows)
            fresh = []
            for example in chunk.examples:
                if example.id in seen:
                    reason = f"duplicate id {example.id!r} (first seen in an earlier chunk)"
                    if self.on_error == "raise":
                        raise DataError(f"{self.label}: {reason}")
                    chunk.skipped.append((f"id {example.id!r}", reason))
                    continue
                seen.add(example.id)
                fresh.append(example)
            chunk.examples = fresh
            yield chunk


def open_stream(path: str | Path, format: str | None = None, *, columns=None, on_error: str = "raise",
                chunk_rows: int = 2000) -> Stream:
    """`path` (a file or `hf:NAME[:SPLIT]`, a saved dataset folder, or any input `load` reads) for
    reading in chunks of `chunk_rows` rows."""
    if chunk_rows < 1:
        raise UserError(f"chunk_rows: expected a positive number of rows, got {chunk_rows}")
    text = str(path)
    if text.startswith("hf:") or format == "hf" or (Path(text).is_dir() and hf.sniff(Path(text)) is True):
        stream = _hf_stream(text.removeprefix("hf:"), columns, on_error)
    else:
        local = Path(text)
        if text not in NAMED:
            check_file(local)
        if format is None and local.is_file():
            format = generic_for(local) if columns else detect(local)
        if format in STREAMED and local.is_file() and not (format == "jsonl" and _is_array(local)):
            stream = _file_stream(local, format, columns, on_error)
        else:
            stream = _whole(load(path, format, columns=columns, on_error=on_error))
    stream.chunk_rows, stream.on_error = chunk_rows, on_error
    return stream


def _whole(result: LoadResult) -> Stream:
    """A Stream over examples `load` read whole; its skipped rows come with the first chunk."""
    pending = list(result.skipped)

    def build(rows, start):
        skipped = pending[:]
        pending.clear()
        return dataclasses.replace(result, examples=[example for _, example in rows], skipped=skipped, notes=[])

    return Stream(result.path, result.format, False, iter([(None, e) for e in result.examples]), build,
                  read=lambda: None, total=len(result.examples))


# --- files -----------------------------------------------------------------------------------------

def _file_stream(path: Path, format: str, columns, on_error: str) -> Stream:
    if format == "parquet":
        return _parquet_stream(path, columns, on_error)
    raw = open(path, "rb")
    size = os.path.getsize(path) or 1
    binary = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
    handle = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    if format in ("arena", "csv"):
        header, rows = csv_records(handle, path)
    else:
        header, rows = _jsonl_header(path), jsonl_records(handle, path)
    return Stream(str(path), format, True, rows, builder(path, format, header, columns, on_error),
                  read=lambda: raw.tell() / size if not raw.closed else 1.0)


def builder(label, format: str, header: list[str], columns, on_error: str) -> Callable[[list, int], LoadResult]:
    """How a chunk of `format` records becomes examples: the loaders' own record -> example code.

    `label` names the input in messages; `header` lists its columns (or first record's fields)."""
    if format == "arena":
        missing = [c for c in arena.TEXT_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{label}: missing column(s) {', '.join(missing)} (found {', '.join(header)})")
        labelled = [c for c in arena.WINNER_COLUMNS if c in header]
        if labelled and len(labelled) != len(arena.WINNER_COLUMNS):
            raise DataError(f"{label}: has {', '.join(labelled)} but not "
                            f"{', '.join(c for c in arena.WINNER_COLUMNS if c not in labelled)}")
        make = lambda row, index: dataclasses.replace(hf.arena_pair(row), source="arena")  # noqa: E731
        return lambda rows, start: collect(label, "arena", "pair", rows, make, on_error, start=start)
    if format == "hh_rlhf":
        def make(row, index):
            if not isinstance(row, dict):
                raise DataError(f"expected a JSON object, got {type(row).__name__}")
            return dataclasses.replace(hf.hh_pair(row, index), source="hh_rlhf")
        return lambda rows, start: collect(label, "hh_rlhf", "pair", rows, make, on_error, start=start)
    mapping = cols.check_mapping(label, cols.parse_columns(columns) or cols.default_mapping(header), header)
    return lambda rows, start: cols.build(label, format, rows, mapping, on_error, start=start)


def csv_records(handle, path: Path) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    """(header, lazy rows) of a CSV handle, named "row N (line L)" as `files.csv_rows` names them."""
    csv.field_size_limit(1 << 30)
    reader = csv.DictReader(handle)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    if not header:
        raise DataError(f"{path}: the file is empty")
    reader.fieldnames = header

    def rows():
        start = reader.line_num + 1
        try:
            for n, row in enumerate(reader, start=1):
                line, start = start, reader.line_num + 1
                if None in row:
                    raise DataError(f"{path}: row {n} (line {line}): {len(row[None]) + len(header)} fields, "
                                    f"but the header has {len(header)}")
                yield f"row {n} (line {line})", row
        except csv.Error as err:
            raise DataError(f"{path}: line {reader.line_num}: unreadable CSV: {err}") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: after line {reader.line_num}: not UTF-8 text ({err.reason})") from None
        finally:
            handle.close()

    return header, rows()


def jsonl_records(handle, path: Path) -> Iterator[tuple[str, Callable[[], object]]]:
    """Lazy rows of a JSON-lines handle as (where, parse), like `files.jsonl_rows`; blank lines are not rows."""
    for number, line in jsonl_lines(handle, path):
        yield f"line {number}", (lambda line=line: parse_json_line(line))


def jsonl_lines(handle, path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a JSON-lines handle's non-blank lines; the handle is closed at the end."""
    number = 0
    try:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: line {number + 1}: not UTF-8 text ({err.reason})") from None
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise DataError(f"{path}: after line {number}: cannot read on: {err}") from None
    finally:
        handle.close()


def _jsonl_header(path: Path) -> list[str]:
    record = first_json_record(path)
    if record is None and not base_name(path).endswith(".json"):
        # Let the first line's own error speak (too deeply nested, not JSON) instead of "no prompt column".
        for where, parse in jsonl_records(open_text(path), path):
            try:
                parse()
            except DataError as err:
                raise DataError(f"{path}: {where}: {err}") from None
            break
    return list(record) if isinstance(record, dict) else []


def _is_array(path: Path) -> bool:
    return base_name(path).endswith(".json") and head(path, 4096).lstrip().startswith("[")


def _parquet_stream(path: Path, columns, on_error: str) -> Stream:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: unreadable Parquet: {err}") from None
    total = parquet.metadata.num_rows
    done = [0]

    def rows():
        # Batches of a row group at most; the reader holds one batch, never the file.
        for batch in parquet.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                done[0] += 1
                yield f"row {done[0]}", record

    build = builder(path, "parquet", parquet.schema_arrow.names, columns, on_error)
    return Stream(str(path), "parquet", True, rows(), build, read=lambda: done[0] / max(total, 1), total=total)


# --- Hugging Face datasets -------------------------------------------------------------------------

def _hf_stream(name: str, columns, on_error: str) -> Stream:
    """A saved folder is memory-mapped and iterated; a hub name is opened with streaming=True, so
    nothing is downloaded whole."""
    import datasets

    if Path(name).is_dir():
        saved, label = hf.open_dataset(name)
        total, dataset = len(saved), saved.to_iterable_dataset()
    else:
        repo, _, split = name.partition(":")
        split, label, total = split or "train", f"hf:{repo}[{split or 'train'}]", None
        try:
            dataset = datasets.load_dataset(repo, split=split, streaming=True)
        except Exception as err:  # datasets raises many kinds (connection, missing repo, missing split)
            raise DataError(f"hf:{name}: cannot stream from the Hugging Face hub: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from None
    records = iter(dataset)
    first = next(records, None)
    if first is None:
        raise DataError(f"{label}: no rows")
    header = list(first)
    done = [0]

    def rows():
        for row in chain([first], records):
            done[0] += 1
            yield f"row {done[0]}", row

    if not columns and {"chosen", "rejected"} <= set(header) and isinstance(first["chosen"], str):
        make = lambda row, index: hf.hh_pair(row, index)  # noqa: E731
        build = lambda rows, start: collect(label, "hf", "pair", rows, make, on_error, start=start)  # noqa: E731
    elif not columns and set(arena.TEXT_COLUMNS) <= set(header):
        build = lambda rows, start: collect(label, "hf", "pair", rows, lambda row, i: hf.arena_pair(row),  # noqa: E731
                                            on_error, start=start)
    else:
        build = builder(label, "hf", header, columns, on_error)
    return Stream(label, "hf", True, rows(), build,
                  read=lambda: done[0] / total if total else None, total=total)


