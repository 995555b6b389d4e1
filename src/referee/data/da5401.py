"""DA5401-2025 metric-matching data: conversations scored 0-10 against a named metric, plus the metric
catalogue (names and their embeddings).

- Examples: a JSON array (or JSON lines) of `{metric_name, score, user_prompt, response, system_prompt}`
  -> ScoreExample(metric=metric_name, 0-10, system prompt kept). The texts are multilingual (Hindi,
  Tamil, Bengali, English, …); the language is left to `referee data inspect` to read from the script.
- Catalogue: `metric_names.json` (145 names such as "inclusivity/gender_inclusivity") and
  `metric_name_embeddings.npy` (145 x 768 float32, unit rows), read with `load_catalogue(folder)`.
Ids are the 0-based record position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from referee.data.files import (
    DataError, LoadResult, collect, head, json_rows, jsonl_rows, read_json, sniff_json_fields, text_field,
)
from referee.schema import Conversation, ScoreExample

FIELDS = ("metric_name", "score", "user_prompt", "response")
SCALE = (0.0, 10.0)
NAMES_FILE, EMBEDDINGS_FILE = "metric_names.json", "metric_name_embeddings.npy"


def sniff(path: Path) -> bool | str:
    if path.is_dir() or path.name in (NAMES_FILE, EMBEDDINGS_FILE):
        return "a DA5401 metric catalogue, not examples: read it with referee.data.da5401.load_catalogue"
    return sniff_json_fields(path, FIELDS)


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    rows = json_rows(path) if head(path, 4096).lstrip().startswith("[") else jsonl_rows(path)

    def make(row, index: int) -> ScoreExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        score = row.get("score")
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise DataError(f"field 'score': expected a number 0-10, got {score!r}") from None
        system = row.get("system_prompt")
        if system is not None and not isinstance(system, str):
            raise DataError(f"field 'system_prompt': expected text or null, got {type(system).__name__}")
        return ScoreExample(
            id=str(row.get("id", index)), source="da5401", metric=text_field(row, "metric_name").strip(),
            conversation=Conversation.from_text(text_field(row, "user_prompt"), text_field(row, "response"),
                                                system=system),
            score=score, scale=SCALE,
        )

    return collect(path, "da5401", "score", rows, make, on_error)


def load_catalogue(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """(metric names, embeddings (n, d) float32) from `metric_names.json` + `metric_name_embeddings.npy`.

    The two must agree in length; the embeddings are read without pickle."""
    folder = Path(folder)
    names = read_json(folder / NAMES_FILE) if (folder / NAMES_FILE).exists() else None
    if names is None:
        raise DataError(f"{folder}: no {NAMES_FILE}")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{folder / NAMES_FILE}: expected a JSON list of metric names")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{folder / NAMES_FILE}: duplicate metric name {dup!r}")
    try:
        embeddings = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{folder / EMBEDDINGS_FILE}: cannot read: {err}") from None
    if embeddings.ndim != 2 or embeddings.shape[0] != len(names):
        raise DataError(f"{folder / EMBEDDINGS_FILE}: shape {embeddings.shape}, expected ({len(names)}, d) "
                        f"to match {NAMES_FILE}")
    return names, embeddings.astype(np.float32, copy=False)


def describe_catalogue(folder: Path) -> dict:
    """A summary of the catalogue for `referee data inspect`."""
    names, embeddings = load_catalogue(folder)
    norms = np.linalg.norm(embeddings, axis=1)
    groups: dict[str, int] = {}
    for name in names:
        groups[name.split("/", 1)[0]] = groups.get(name.split("/", 1)[0], 0) + 1
    return {"metrics": len(names), "embedding_shape": list(embeddings.shape), "dtype": str(embeddings.dtype),
            "unit_rows": bool(np.allclose(norms, 1, atol=1e-3)), "groups": groups}


def describe_scores(path: Path) -> dict:
    """A summary of a `.npy` score vector (the competition's training scores)."""
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    if scores.ndim != 1:
        raise DataError(f"{path}: expected a vector of scores, got shape {scores.shape}")
    values, counts = np.unique(scores, return_counts=True)
    return {"rows": int(scores.size), "labels": {f"{v:g}": int(c) for v, c in zip(values, counts)},
            "min": float(scores.min()), "max": float(scores.max()), "mean": round(float(scores.mean()), 3)}
