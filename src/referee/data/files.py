"""What every loader shares: reading JSON, JSON lines and CSV files (plain or gzipped) with errors that
name the file and line, and `collect`, which turns raw rows into examples, skipping or stopping on a bad
row as the user asked, and refusing duplicate ids and empty files."""

from __future__ import annotations

import csv
import gzip
import io
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from referee.errors import UserError

ON_ERROR = ("raise", "skip")
# Scalars read as text in the row being made: `text_field` adds (field, value) and `collect`, which
# knows which row it is, turns them into notes. A context variable, so loaders keep their signatures.
_scalars: ContextVar[list | None] = ContextVar("scalars", default=None)


class DataError(UserError):
    """A data file referee cannot read as asked: names the file, the row and the field.

    >>> from referee.data import load
    >>> load("no/such/file.csv")
    Traceback (most recent call last):
    ...
    referee.data.files.DataError: no/such/file.csv: no such file or folder (named sources: ...)
    """


@dataclass
class LoadResult:
    """What a loader read: the examples, their format and task, and every row it skipped (where, why).

    `notes` are facts about the data worth a look that did not stop it from loading (for example
    `null` turns read as empty text); `referee data inspect` lists them under problems.

    >>> from referee.schema import Conversation, ScoreExample
    >>> row = ScoreExample(id="1", conversation=Conversation.from_text("Hi", "Hello!"), metric="politeness", score=9)
    >>> res = LoadResult(examples=[row], format="csv", task="score", path="mine.csv", skipped=[("row 2", "no prompt")])
    >>> len(res), res.skipped
    (1, [('row 2', 'no prompt')])
    """

    examples: list
    format: str
    task: str
    path: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)


def open_text(path: Path) -> io.TextIOBase:
    """A text handle on a plain or gzipped file; a UTF-8 byte-order mark is dropped."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def head(path: Path, size: int = 65536) -> str:
    """The first `size` characters of a file, or "" when it is not readable text (used to sniff)."""
    try:
        with open_text(path) as handle:
            return handle.read(size)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return ""


def base_name(path: Path) -> str:
    """The file name without .gz, lower-cased: what the extension checks look at."""
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def read_text(path: Path) -> str:
    """The whole file as text; bytes that are not UTF-8 are an error naming the file and offset."""
    try:
        with open_text(path) as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except gzip.BadGzipFile:
        raise DataError(f"{path}: not a gzip file (its name ends in .gz)") from None
    except EOFError:
        raise DataError(f"{path}: truncated gzip (unexpected end of file)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from None


def gzip_problem(path: Path) -> str | None:
    """Why a .gz file cannot be read through (not gzip, or cut short), or None. Checked before format
    detection so that one line says what is wrong, not every format's refusal."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except gzip.BadGzipFile:
        return "not a gzip file (its name ends in .gz)"
    except EOFError:
        return "truncated gzip (unexpected end of file)"
    except (OSError, ValueError) as err:  # zlib.error is an OSError: corrupt compressed data
        return f"corrupt gzip ({err})"
    return None


def parse_json(text: str):
    """json.loads, with nesting too deep for Python's parser reported as a JSONDecodeError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply (more than Python's recursion limit)", text, 0) from None


def read_json(path: Path):
    """The whole file as JSON; a syntax error names the file, line and column."""
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        return parse_json(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None


def json_rows(path: Path) -> list[tuple[str, object]]:
    """Rows of a JSON array file as (where, record)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, found a JSON {type(data).__name__}")
    return [(f"record {i}", record) for i, record in enumerate(data)]


def jsonl_rows(path: Path) -> Iterable[tuple[str, Callable[[], object]]]:
    """Rows of a JSON-lines file as (where, parse) with where = "line N"; blank lines are not rows.

    Parsing is deferred so that one invalid line stops the run, or is skipped and counted, like any
    other bad row."""
    yield from json_lines(read_text(path))


def json_lines(text: str, prefix: str = "") -> Iterable[tuple[str, Callable[[], object]]]:
    """`jsonl_rows` of JSON-lines text (a file inside a wheel, say); where = prefix + "line N"."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield f"{prefix}line {number}", (lambda line=line: parse_json_line(line))


def parse_json_line(line: str):
    try:
        return parse_json(line)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON at column {err.colno}: {err.msg}") from None


def first_json_record(path: Path):
    """The first record of a JSON-lines or JSON-array file, or None: enough to sniff the format."""
    text = head(path, 1 << 20).lstrip()
    if text.startswith("["):
        try:
            data = parse_json(text)
        except json.JSONDecodeError:
            # A large array cut off by `head`: read the whole file (sniffing stays a rare, one-off cost).
            try:
                data = read_json(path)
            except DataError:
                return None
        return data[0] if isinstance(data, list) and data else None
    line = text.split("\n", 1)[0]
    try:
        return parse_json(line)
    except json.JSONDecodeError:
        return None


def json_problem(path: Path) -> None:
    """Raise the JSON syntax error of a JSON-array file, or of a JSON-lines file's first line, if any."""
    text = head(path, 1 << 20).lstrip()
    if text.startswith("["):
        read_json(path)
        return
    try:
        parse_json(text.split("\n", 1)[0])
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line 1, column {err.colno}: invalid JSON: {err.msg}") from None


def sniff_json_fields(path: Path, fields: Iterable[str], suffixes: tuple[str, ...] = (".json", ".jsonl")) -> bool | str:
    """True when `path` is JSON or JSON lines whose first record has every one of `fields`; else why not."""
    if not base_name(path).endswith(suffixes):
        return f"not a {' or '.join(suffixes)} file"
    record = first_json_record(path)
    if not isinstance(record, dict):
        return "first record is not a JSON object"
    missing = [f for f in fields if f not in record]
    return f"first record has no {', '.join(repr(m) for m in missing)}" if missing else True


def csv_rows(text: str, path: Path, first_line: int = 1) -> tuple[list[str], list[tuple[str, dict]]]:
    """(header, rows) of CSV text; where = "row N (line L)", N counting data rows from 1.

    `first_line` is the file line the text starts on (after skipped comment lines)."""
    csv.field_size_limit(1 << 30)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = []
    try:
        # line_num is the last line read (the header was read above), so a record starts one line after
        # the previous one ended.
        start = reader.line_num + 1
        for n, row in enumerate(reader, start=1):
            line, start = first_line + start - 1, reader.line_num + 1
            if None in row:
                raise DataError(f"{path}: row {n} (line {line}): {len(row[None]) + len(header)} fields, "
                                f"but the header has {len(header)}")
            rows.append((f"row {n} (line {line})", row))
    except csv.Error as err:
        raise DataError(f"{path}: line {first_line + reader.line_num - 1}: unreadable CSV: {err}") from None
    return header, rows


def read_csv(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    return csv_rows(text, path)


def csv_header(path: Path) -> list[str]:
    """The header of a CSV file (for sniffing), or [] when there is none."""
    text = head(path)
    if not text:
        return []
    try:
        return [h.strip() for h in next(csv.reader(io.StringIO(text)))]
    except (csv.Error, StopIteration):
        return []


def require(row: dict, names: Iterable[str]) -> None:
    """Stop when a row lacks any of `names`, naming them all."""
    missing = [n for n in names if n not in row]
    if missing:
        raise DataError(f"missing field(s) {', '.join(map(repr, missing))}")


def collect(path, format: str, task: str, rows: Iterable, make: Callable, on_error: str = "raise",
            notes: list[str] | None = None, start: int = 0) -> LoadResult:
    """Turn `rows` — (where, raw) pairs; raw may be a zero-argument callable that parses it — into
    examples with `make(raw, index)` (index: the row's 0-based position, for sources without ids),
    which may return one example or a list of them. `start` is the index of the first row (a chunk of a
    file read in parts, `referee.data.stream`).

    A bad row (DataError, SchemaError, KeyError, ValueError, TypeError) stops the load with a message
    naming the file and row, or, with on_error="skip", is skipped and recorded. A duplicate id is a bad
    row. A file with no rows at all is an error either way."""
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    examples, skipped, seen = [], [], {}
    scalars: dict[str, list[str]] = {}  # field -> where each scalar was read as text
    n_rows = 0
    for index, (where, raw) in enumerate(rows, start=start):
        n_rows += 1
        row_scalars = []
        token = _scalars.set(row_scalars)
        try:
            made = make(raw() if callable(raw) else raw, index)
            made = made if isinstance(made, list) else [made]
            for example in made:
                if example.id in seen:
                    raise DataError(f"duplicate id {example.id!r} (first seen at {seen[example.id]})")
            for example in made:
                seen[example.id] = where
        except (UserError, KeyError, ValueError, TypeError) as err:
            reason = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            if on_error == "raise":
                raise DataError(f"{path}: {where}: {reason}") from None
            skipped.append((where, reason))
            continue
        finally:
            _scalars.reset(token)
        examples.extend(made)
        for name, value in row_scalars:
            scalars.setdefault(name, []).append(f"{where}: {value!r}")
    if n_rows == 0:
        raise DataError(f"{path}: no rows: the file holds no {format} records")
    notes = list(notes or [])
    for name, places in scalars.items():
        shown = "; ".join(places[:3]) + ("; ..." if len(places) > 3 else "")
        notes.append(f"field {name!r}: {len(places)} value(s) that are not text (a JSON number or boolean) "
                     f"read as text ({shown})")
    return LoadResult(examples=examples, format=format, task=task, path=str(path), skipped=skipped, notes=notes)


def text_field(row: dict, name: str) -> str:
    """A text field that must be present and a string.

    A number or boolean (PandaLM has `"response1": true`: the model answered "True") is read as its text
    and listed in the load's notes, never an error.

    >>> text_field({"response1": True}, "response1")
    'True'
    """
    if name not in row:
        raise DataError(f"missing field {name!r}")
    return as_text(row[name], name)


def as_text(value, name: str) -> str:
    """`value` of field `name` as text: a scalar is converted and remembered for the load's notes."""
    if value is None:
        raise DataError(f"field {name!r} is null")
    if isinstance(value, (bool, int, float)):
        recorded = _scalars.get()
        if recorded is not None:
            recorded.append((name, value))
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"field {name!r}: expected text, got {type(value).__name__}")
    return value
