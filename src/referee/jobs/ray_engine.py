"""The same judge on a Ray cluster: Ray Data reads the input's shards, a pool of actors judges them
(each actor loads the judge folder once) and the rows are written as Parquet shards.

    from referee.jobs.ray_engine import predict_ray
    predict_ray("judge/", "logs/", "scores.parquet", actors=8, address="ray://head:10001")

Inputs: a file or a folder of shards (same extension) in a line format: Parquet, JSON lines (plain or
.gz: `generic jsonl` with a column mapping, or hh_rlhf) or CSV (`generic csv`, or arena). Records
become examples through `referee.data.stream.builder`, the code `referee.data.load` uses, so the rows
and values are those of the in-memory and streaming paths. Ids that come from a row's position
(hh_rlhf, or no id column) are numbered across the whole input in read order, and a bad row is named
by its position (`record N`).

Without `address`, a local Ray instance is started on this machine's CPUs; `address` reaches a running
cluster (`"auto"`, `"ray://HOST:10001"`); the judge folder and the input must then be readable at the
same path on every node (a shared file system, or object storage Ray's readers take). Needs the
`ray` extra: `pip install 'referee[ray]'`.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from itertools import accumulate
from pathlib import Path

import pandas as pd

from referee.data import detect, generic_for
from referee.data.files import DataError, csv_header, first_json_record, open_text, parse_json_line
from referee.data.stream import builder, jsonl_lines
from referee.errors import UserError, require_extra
from referee.judges import load_judge

# Ray's reader for each format it takes; every other format is read by --engine local.
READERS = {"parquet": "parquet", "jsonl": "text", "hh_rlhf": "text", "csv": "csv", "arena": "csv"}
SUFFIXES = {"parquet": (".parquet",), "text": (".jsonl", ".jsonl.gz", ".ndjson", ".json"), "csv": (".csv", ".csv.gz")}
ROW = "__referee_row"  # the row's position in the input, for ids that come from it
LINE, FILE = "__referee_line", "__referee_file"  # a JSON line's number in its file, and the file's index
BLOCK_LINES = 1000  # JSON lines per block read: the actors start on the first block, not the whole file


class JudgeBatches:
    """One Ray actor: loads the judge folder once, then judges batch after batch of raw records."""

    def __init__(self, judge_dir: str, label: str, format: str, header: list[str], columns, on_error: str,
                 trust_encoder: bool, files: list[str]):
        self.judge = load_judge(judge_dir, trust_encoder=trust_encoder)
        self.build = builder(label, format, header, columns, on_error)
        self.reader = READERS[format]
        # A bad JSON line is named by its line number, after its file's name when there are several.
        self.prefix = [f"{name}: " if len(files) > 1 else "" for name in files]

    def __call__(self, batch) -> pd.DataFrame:
        # batch: a pyarrow Table of contiguous rows; ROW holds their positions in the input.
        start = batch.column(ROW)[0].as_py()
        if batch.column(ROW)[-1].as_py() - start != batch.num_rows - 1:
            raise RuntimeError("referee: Ray handed an actor rows out of order")  # ids would be wrong
        if self.reader == "text":
            rows = [(f"{self.prefix[file]}line {number}", (lambda line=line: parse_json_line(line)))
                    for line, number, file in zip(*(batch.column(c).to_pylist() for c in ("text", LINE, FILE)))]
        else:
            records = batch.drop_columns([ROW]).to_pylist()
            rows = [(f"record {start + i + 1}", r) for i, r in enumerate(records)]
        examples = self.build(rows, start).examples
        if not examples:  # every row of the batch was bad and skipped
            return pd.DataFrame()
        table = self.judge.predict_table(examples)
        table[ROW] = start  # the batch's place in the input, for `in_input_order`; dropped there
        return table


def predict_ray(judge_dir: str | Path, data: str | Path, out: str | Path, *, format: str | None = None,
                columns=None, on_error: str = "raise", actors: int = 2, actor_cpus: float = 1.0,
                batch_rows: int = 2000, address: str | None = None, progress: bool = True,
                trust_encoder: bool = False) -> dict:
    """Judge `data` on Ray with `actors` judge actors of `actor_cpus` CPUs each; write Parquet shards
    into the folder `out`.

    Returns a summary: rows written, bad rows skipped (counted, with on_error="skip"), seconds, rows/s."""
    require_extra("ray", "ray")
    import ray
    import ray.data

    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out} exists: --engine ray writes a new folder of Parquet shards (no --resume)")
    # Checked here, in one line: a folder the actors refused would fail inside Ray, as a wall of tracebacks.
    load_judge(judge_dir, trust_encoder=trust_encoder)
    files = input_files(Path(data))
    format = format or (generic_for(files[0]) if columns else detect(files[0]))
    if format not in READERS:
        raise UserError(f"--engine ray reads {', '.join(READERS)} shards; {files[0]} is {format}: "
                        "judge it with --engine local")
    reader = READERS[format]
    header = _header(files[0], reader)
    label = str(data)
    builder(label, format, header, columns, on_error)  # checks the columns before a cluster starts
    if not ray.is_initialized():
        # Locally, one CPU more than the actors hold: Ray Data's read and write tasks need one to run
        # (with every CPU held by an actor the pipeline waits forever).
        local = {} if address else {"num_cpus": actors * actor_cpus + 1}
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False, **local)

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.execution_options.preserve_order = True  # shards follow the input's order
    context.raise_original_map_exception = True  # a bad row's DataError reaches us, not a wrapper
    start = time.perf_counter()
    paths = [str(f) for f in files]
    if reader == "text":
        # Every JSON line carries its position, counted here first: a pass over the text at a few
        # hundred MB/s, where Ray's count would read the input twice through the cluster.
        sizes = [sum(1 for _ in jsonl_lines(open_text(f), f)) for f in files]
        ds = ray.data.read_datasource(json_lines(paths, sizes))
        n_input = sum(sizes)
    elif reader == "parquet":
        ds = ray.data.read_parquet(paths)
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        # Every column as text, as Python's csv module reads it (an id "007" stays "007").
        ds = ray.data.read_csv(paths, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                               convert_options=pacsv.ConvertOptions(
                                   column_types={h: pa.string() for h in header},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False))
    if reader != "text":
        # Every row gets its position in the input: ids of formats without an id column are positions,
        # and a bad row is named by it. zip is deprecated from Ray 2.64 because it relies on a
        # deterministic order, which preserve_order above gives; the extra pins ray below 2.64.
        n_input = ds.count()  # Parquet: from the files' metadata; CSV: one extra read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.zip(ray.data.range(n_input).rename_columns({"id": ROW}))
    ds = ds.map_batches(JudgeBatches, fn_constructor_args=(str(judge_dir), label, format, header, columns, on_error,
                                                              trust_encoder, [f.name for f in files]),
                        batch_size=batch_rows, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=actor_cpus)
    failure = None
    try:
        ds.write_parquet(str(out))
    except Exception as err:  # Ray wraps the actor's exception; a UserError inside is the user's to read
        failure = _user_error(err)
        if failure is None:
            raise
        failure = str(failure)
    if failure is not None:
        # The failed pipeline's actors go only once its exception's reference cycles are collected;
        # until then they hold their CPUs, and the next pipeline in this process would wait for them.
        del ds
        gc.collect()
        raise UserError(failure)
    written = in_input_order(out)
    seconds = time.perf_counter() - start
    return {"rows": written, "skipped": n_input - written, "out": str(out), "format": format, "actors": actors,
            "seconds": seconds, "rows_per_s": written / seconds if seconds else 0.0}


def in_input_order(out: Path) -> int:
    """Rewrite Ray's output files as part-000000.parquet, ... in the input's order, without the ROW
    column; returns the rows written. Ray names each file by its write task, and the tasks' numbers do
    not always follow the input (seen: the last batch's file sorted first, one run in three), even with
    preserve_order; every row carries its batch's first position, so the order is restored here, one
    file in memory at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted((*_positions(path), path) for path in out.glob("*.parquet"))
    for (_, last, _), (first, _, path) in zip(files, files[1:]):
        if 0 <= first < last:  # batches interleaved across files: renaming cannot order them
            raise RuntimeError(f"referee: Ray wrote {path.name} with rows from before another file's; "
                               "the output's order is not the input's")
    written = 0
    for i, (_, _, path) in enumerate(files):
        table = pq.read_table(path)
        table = table.take(pc.sort_indices(table, sort_keys=[(ROW, "ascending")])).drop_columns([ROW])  # stable
        pq.write_table(table, out / f".part-{i:06d}.parquet")
        path.unlink()
        written += table.num_rows
    for i in range(len(files)):
        (out / f".part-{i:06d}.parquet").rename(out / f"part-{i:06d}.parquet")
    return written


def _positions(path: Path) -> tuple[int, int]:
    """The first and last batch position (ROW) in a written file, from its row groups' statistics
    (no data read); (-1, -1) for a file without rows."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    column = meta.schema.names.index(ROW)
    stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)
             if meta.row_group(g).num_rows]
    return (min(s.min for s in stats), max(s.max for s in stats)) if stats else (-1, -1)


def json_lines(paths: list[str], sizes: list[int]):
    """A Ray datasource of JSON-lines files: one row per non-blank line, with its line number, its file and
    its position in the whole input (`sizes`: the non-blank lines of each file).

    Written here because `ray.data.read_text` differs from the streaming engine in two ways that change
    results: it splits on every Unicode line break (a raw U+2028 inside a JSON string cuts the record
    in two) and it reads a whole file into memory before the first row moves on. This splits lines
    exactly as `referee.data.stream` does (the same function) and yields a block every BLOCK_LINES lines."""
    import io

    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    starts = dict(zip((Path(p).name for p in paths), zip(range(len(paths)), [0, *accumulate(sizes)])))

    class JsonLines(FileBasedDatasource):
        def _read_stream(self, f, path: str):
            file, position = starts[Path(path).name]  # the input's files share one folder: names are unique
            lines, numbers = [], []
            for number, line in jsonl_lines(io.TextIOWrapper(f, encoding="utf-8-sig", newline=""), path):
                lines.append(line)
                numbers.append(number)
                if len(lines) == BLOCK_LINES:
                    yield _block(lines, numbers, file, position)
                    position += len(lines)
                    lines, numbers = [], []
            if lines:
                yield _block(lines, numbers, file, position)

    def _block(lines, numbers, file, position):
        return pa.table({"text": lines, LINE: numbers, FILE: [file] * len(lines),
                         ROW: list(range(position, position + len(lines)))})

    return JsonLines(paths)


def input_files(data: Path) -> list[Path]:
    """The file, or the shards of a folder (one extension)."""
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise UserError(f"--data {data}: no such file or folder")
    for suffixes in SUFFIXES.values():
        files = sorted(p for p in data.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
        if files:
            return files
    raise UserError(f"--data {data}: no .parquet, .jsonl or .csv shards in the folder")


def _header(path: Path, reader: str) -> list[str]:
    if reader == "parquet":
        import pyarrow.parquet as pq
        return pq.read_schema(path).names
    if reader == "csv":
        return csv_header(path)
    record = first_json_record(path)
    if not isinstance(record, dict):
        raise DataError(f"{path}: the first line is not a JSON object")
    return list(record)


def _user_error(err: BaseException) -> BaseException | None:
    """The innermost UserError in the chain Ray wrapped around the actor's exception, if any."""
    found, seen = None, set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, UserError):
            found = err
        err = getattr(err, "cause", None) or err.__cause__
    return found
