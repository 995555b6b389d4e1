"""`referee predict` on inputs of any size: read a chunk, judge it, append its rows to the output, and
on to the next, so memory stays flat whatever the input's size.

    from referee.jobs.stream import predict_stream
    summary = predict_stream("judge/", "logs.jsonl", "scores.parquet", resume=True)

The output is valid after every chunk, so an interrupted run loses at most the chunk in hand:
- `x.csv` (any name but NAME.parquet): one CSV file; it appears with its header and first chunk, and
  each later chunk is appended in one write and flushed to disk. The rows are the ones the in-memory
  path writes, in the same order, in the same text.
- `x.parquet`: a folder of Parquet part files (a Parquet dataset: `pandas.read_parquet("x.parquet")`
  reads it whole); each part is written under a temporary name and renamed into place.
`resume=True` reads the ids already in the output and judges only the others: an interrupted run
resumed ends with exactly the rows of an uninterrupted one. Without it, an existing output is an error
(referee never overwrites what it may not have written).
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from referee.data.stream import open_stream
from referee.errors import UserError
from referee.io import atomic_file
from referee.judges import load_judge
from referee.progress import bar as progress_bar


def predict_stream(judge_dir: str | Path, data: str | Path, out: str | Path, *, format: str | None = None,
                   columns=None, on_error: str = "raise", resume: bool = False, chunk_rows: int = 2000,
                   progress: bool = True, trust_encoder: bool = False) -> dict:
    """Judge `data` with the judge saved in `judge_dir`, a chunk at a time, into `out` (.csv or .parquet).

    Returns a summary: rows judged now, rows found already written (resume), bad rows skipped and
    why, seconds, rows per second and the process's peak resident memory.

    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ratings = Path(tmp.name) / "ratings.csv"
    >>> _ = ratings.write_text("question,answer,rating\\n"
    ...                        "How do I boil an egg?,Boil it for seven minutes then cool it.,5\\n"
    ...                        "How do I boil an egg?,No idea.,1\\n"
    ...                        "Capital of France?,Paris is the capital of France.,5\\n"
    ...                        "Capital of France?,Not sure.,2\\n"
    ...                        "How many legs has a spider?,A spider has eight legs.,4\\n"
    ...                        "How many legs has a spider?,No idea sorry.,1\\n")
    >>> from referee.jobs.config import TrainConfig
    >>> from referee.jobs.train import train
    >>> _ = train(TrainConfig(task="score", data=str(ratings), out=f"{tmp.name}/judge", progress=False,
    ...                       columns="prompt=question,response=answer,score=rating"))
    >>> done = predict_stream(f"{tmp.name}/judge", ratings, f"{tmp.name}/scores.csv", progress=False,
    ...                       columns="prompt=question,response=answer")
    >>> done["rows"], done["columns"], done["streamed"]
    (6, ['id', 'metric', 'score'], True)
    >>> predict_stream(f"{tmp.name}/judge", ratings, f"{tmp.name}/scores.csv", resume=True, progress=False,
    ...                columns="prompt=question,response=answer")["resumed"]  # every id already written
    6
    >>> tmp.cleanup()
    """
    start = time.perf_counter()
    output = open_output(out, resume)
    done = output.done_ids()
    judge = load_judge(judge_dir, trust_encoder=trust_encoder)
    stream = open_stream(data, format, columns=columns, on_error=on_error, chunk_rows=chunk_rows)
    judged = resumed = 0
    skipped: Counter = Counter()
    bar = progress_bar(total=stream.total, unit="row", desc=f"judging {Path(str(data)).name}", enabled=progress)
    try:
        for chunk in stream.chunks():
            todo = [ex for ex in chunk.examples if ex.id not in done]
            resumed += len(chunk.examples) - len(todo)
            skipped.update(why for _, why in chunk.skipped)
            if todo:
                # A score judge puts its own scale (and, where the file names no metric, its metrics) on the rows.
                output.write(judge.predict_table(judge.fill_in(todo) if judge.task == "score" else todo))
                judged += len(todo)
            bar.update(len(chunk.examples) + len(chunk.skipped))
            read = stream.read()
            if stream.total is None and read:
                bar.total = round(bar.n / read)  # estimated from the bytes read: gives tqdm its ETA
                bar.refresh()
    except KeyboardInterrupt:
        raise UserError(f"interrupted: {len(done) + judged:,} rows are in {output.path}; "
                        "run the same command with --resume to go on") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {"rows": judged, "resumed": resumed, "skipped": sum(skipped.values()),
            "skip_reasons": skipped.most_common(5), "out": str(output.path), "columns": output.columns,
            "format": stream.format, "streamed": stream.streamed, "seconds": seconds, "rows_per_s": judged / seconds if seconds else 0.0,
            "peak_rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_output(out: str | Path, resume: bool):
    """The writer for `out`: a folder of Parquet parts for NAME.parquet, else one CSV file."""
    path = Path(out)
    parquet = path.suffix.lower() == ".parquet"
    if path.is_dir() and not parquet:
        raise UserError(f"{path}: is a folder; give a file name to write (or NAME.parquet for Parquet parts)")
    if path.exists() and not resume:
        raise UserError(f"--out {out} exists: --resume continues it; to start again, give another --out or remove it")
    return ParquetOutput(path) if parquet else CsvOutput(path)


class CsvOutput:
    """One CSV file, appended a chunk at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None

    def done_ids(self) -> set[str]:
        """Ids already written; a last line cut short by a crash is dropped first (it is judged again)."""
        if not self.path.exists():
            return set()
        size = self.path.stat().st_size
        with open(self.path, "rb+") as handle:
            handle.seek(max(0, size - (1 << 20)))
            tail = handle.read()
            if tail and not tail.endswith(b"\n"):
                handle.truncate(size - len(tail) + tail.rfind(b"\n") + 1)
        if self.path.stat().st_size == 0:
            return set()
        try:
            table = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, ValueError) as err:
            raise UserError(f"--resume: {self.path}: not a CSV referee predict wrote ({err})") from None
        if "id" not in table.columns:
            raise UserError(f"--resume: {self.path} has no id column: not written by referee predict")
        self.columns = list(table.columns)
        return set(table["id"])

    def write(self, table: pd.DataFrame) -> None:
        if self.columns is not None and list(table.columns) != self.columns:
            raise UserError(f"--resume: {self.path} has columns {', '.join(self.columns)}, but this judge writes "
                            f"{', '.join(table.columns)}: it was written by another judge")
        if self.columns is None:  # the header and the first chunk appear together, or not at all
            with atomic_file(self.path) as tmp:
                table.to_csv(tmp, index=False)
        else:
            with open(self.path, "a", encoding="utf-8", newline="") as handle:
                handle.write(table.to_csv(index=False, header=False))  # one write per chunk
                handle.flush()
                os.fsync(handle.fileno())
        self.columns = list(table.columns)


class ParquetOutput:
    """A folder of Parquet parts, `part-000000.parquet`, one per chunk."""

    def __init__(self, path: Path):
        self.path = path
        self.parts = 0
        self.columns: list[str] | None = None

    def done_ids(self) -> set[str]:
        import pyarrow.parquet as pq

        if not self.path.exists():
            return set()
        if not self.path.is_dir():
            raise UserError(f"--resume: {self.path} is a file; referee predict writes a .parquet folder of parts")
        parts = sorted(self.path.glob("part-*.parquet"))
        others = [p.name for p in self.path.iterdir() if not p.name.startswith(".") and p not in parts]
        if others:
            raise UserError(f"--resume: {self.path} holds {', '.join(others[:3])}: not a folder referee predict wrote")
        ids: set[str] = set()
        for part in parts:
            table = pq.read_table(part)
            if self.columns is None:
                self.columns = table.column_names
            ids.update(table.column("id").to_pylist())
        self.parts = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        return ids

    def write(self, table: pd.DataFrame) -> None:
        if self.columns is not None and list(table.columns) != self.columns:
            raise UserError(f"--resume: {self.path} has columns {', '.join(self.columns)}, but this judge writes "
                            f"{', '.join(table.columns)}: it was written by another judge")
        # atomic_file writes a dot-named sibling first, invisible to Parquet readers: a part is whole or absent.
        with atomic_file(self.path / f"part-{self.parts:06d}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        self.parts += 1
        self.columns = list(table.columns)
