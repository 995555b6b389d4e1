"""`referee predict`: apply a saved judge to data and write its prediction table (the columns each
judge's `predict_table` gives) to a CSV, whole or not at all."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from referee.io import atomic_file
from referee.jobs.train import data_notes, read_data
from referee.judges import load_judge


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write `table` to `path` whole or not at all."""
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def predict(judge_dir: str, data, out: str, format: str | None = None, *, columns=None,
            on_error: str = "raise", trust_encoder: bool = False) -> dict:
    """Apply a saved judge to `data` (one file or several) and write the table to `out`, in memory
    (`referee predict` streams instead: `referee.jobs.stream.predict_stream`, the same columns).

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
    >>> done = predict(f"{tmp.name}/judge", str(ratings), f"{tmp.name}/scores.csv",
    ...                columns="prompt=question,response=answer")
    >>> done["rows"], done["columns"]
    (6, ['id', 'metric', 'score'])
    >>> Path(f"{tmp.name}/scores.csv").read_text().splitlines()[1][:12]  # on the judge's 1-5 scale
    '0,rating,5.0'
    >>> tmp.cleanup()
    """
    start = time.perf_counter()
    judge = load_judge(judge_dir, trust_encoder=trust_encoder)
    res = read_data(data, format, columns=columns, on_error=on_error)
    examples = judge.fill_in(res.examples) if judge.task == "score" else res.examples
    table = judge.predict_table(examples)
    write_csv(table, out)
    return {"rows": len(table), "columns": list(table.columns), "out": str(out),
            "seconds": time.perf_counter() - start, "data_notes": data_notes(res)}
