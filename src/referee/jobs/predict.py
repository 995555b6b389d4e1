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
    """Apply a saved judge to `data` (one file or several) and write the table to `out`."""
    start = time.perf_counter()
    judge = load_judge(judge_dir, trust_encoder=trust_encoder)
    res = read_data(data, format, columns=columns, on_error=on_error)
    examples = judge.fill_in(res.examples) if judge.task == "score" else res.examples
    table = judge.predict_table(examples)
    write_csv(table, out)
    return {"rows": len(table), "columns": list(table.columns), "out": str(out),
            "seconds": time.perf_counter() - start, "data_notes": data_notes(res)}
