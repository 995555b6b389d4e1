"""What an evaluator reads from a judge or from outside predictions: one call, `outputs(examples)`.

A judge answers it itself (`Judge.outputs`). `Predictions` makes predictions made outside referee
stand in for a judge, answering the same call with the same keys.

A CSV in the formats `referee predict` writes, one row per example id:

    pair    id,winner_model_a,winner_model_b,winner_tie      probabilities (hard 0/1 also works)
    score   id,metric,score
    safety  id,p_unsafe[,cost][,<category>...]              unsafe when cost > 0 (else p_unsafe >= .5);
                                                             other columns: p(unsafe) per category
    reward  id,reward_a,reward_b                             rewards of the two responses of a pair

or a PandaLM judge-prediction file (`gpt-3.5-turbo-testset-v1.json`, `pandalm-7b-testset-v1.json`):
hard verdicts per `idx`, read with `referee.data.pandalm.load_judge_predictions`.

`Predictions.outputs(examples)` returns what the evaluator needs, looked up by example id; an id
missing on either side is an error that names the ids.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from referee.errors import UserError
from referee.judges import JUDGES

PAIR_COLUMNS = ("winner_model_a", "winner_model_b", "winner_tie")
VERDICT_INDEX = {"A": 0, "B": 1, "tie": 2}


@dataclass
class Predictions:
    """One outside judge's predictions: `rows[id]` is a dict of floats (or a verdict for hard ones)."""

    name: str
    task: str                      # "pair" | "score" | "safety" | "reward"
    path: Path
    rows: dict[str, dict] = field(default_factory=dict)
    hard: bool = False             # verdicts only (no probabilities): accuracy, not log loss
    categories: list[str] = field(default_factory=list)
    unused: int = 0                # predictions whose id was not in the evaluated data
    history_ = None                # a file has no training curve (a judge trained in this process may)
    train_digest_ = None           # nor a record of the prompts it was trained on

    @property
    def eval_data(self) -> tuple[str, ...]:
        """The data tasks these predictions can be evaluated on: those of a judge of their task."""
        return JUDGES[self.task].eval_data

    def _lookup(self, examples) -> list[dict]:
        """The prediction for each example, by id. Every example needs one; predictions for ids that
        are not in the data (made on a larger file) are left aside and counted in `unused`."""
        ids = [ex.id for ex in examples]
        missing = [i for i in ids if i not in self.rows]
        if missing:
            raise UserError(f"{self.path}: predictions and data do not match by id: {len(missing)} of {len(ids)} "
                            f"data id(s) have no prediction (e.g. {', '.join(map(repr, missing[:3]))}). "
                            "Predict on the same data file you evaluate on.")
        self.unused = len(set(self.rows) - set(ids))
        return [self.rows[i] for i in ids]

    def outputs(self, examples) -> dict:
        """The keys `Judge.outputs` gives for a judge of this task, from the file's rows."""
        rows = self._lookup(examples)
        if self.task == "pair":
            if self.hard:
                decision = np.array([-1 if r["verdict"] is None else VERDICT_INDEX[r["verdict"]] for r in rows])
                return {"decision": decision}
            return {"proba": np.array([[r[c] for c in PAIR_COLUMNS] for r in rows], dtype=float)}
        if self.task == "score":
            for ex, r in zip(examples, rows):
                if r["metric"] and r["metric"] != ex.metric:
                    raise UserError(f"{self.path}: id {ex.id!r}: predicted metric {r['metric']!r}, but the data "
                                    f"scores {ex.metric!r}")
            return {"pred": np.array([r["score"] for r in rows], dtype=float)}
        if self.task == "safety":
            proba = np.array([[r[c] for c in self.categories] + [r["p_unsafe"]] for r in rows])
            flagged = np.array([r["cost"] > 0 if "cost" in r else r["p_unsafe"] >= 0.5 for r in rows])
            return {"proba": proba, "flagged": flagged, "categories": list(self.categories)}
        return {"r_a": np.array([r["reward_a"] for r in rows]), "r_b": np.array([r["reward_b"] for r in rows])}


def read_predictions(path: str | Path) -> Predictions:
    """A predictions file (CSV in a `referee predict` format, or a PandaLM judge JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such predictions file")
    if path.suffix == ".json":
        return _read_pandalm(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            records = list(reader)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); predictions are a CSV file") from None
    if "id" not in header:
        raise UserError(f"{path}: no 'id' column (found {', '.join(header) or 'nothing'}); predictions are matched "
                        "to the data by id")
    if all(c in header for c in PAIR_COLUMNS):
        task, numeric = "pair", list(PAIR_COLUMNS)
    elif "reward_a" in header and "reward_b" in header:
        task, numeric = "reward", ["reward_a", "reward_b"]
    elif "p_unsafe" in header:
        task = "safety"
        numeric = [c for c in header if c not in ("id", "metric")]
    elif "reward" in header:
        raise UserError(f"{path}: id,reward predictions rate single conversations; a reward judge is evaluated on "
                        "pairs: predict on pair data to get id,reward_a,reward_b")
    elif "score" in header:
        task, numeric = "score", ["score"]
    else:
        raise UserError(f"{path}: cannot tell the task from the columns {', '.join(header)}; expected "
                        f"id,{','.join(PAIR_COLUMNS)} (pair), id,metric,score (score), id,p_unsafe,cost (safety) "
                        "or id,reward_a,reward_b (reward)")
    rows: dict[str, dict] = {}
    for i, record in enumerate(records, start=2):  # row 1 is the header
        key = (record.get("id") or "").strip()
        if not key:
            raise UserError(f"{path}: row {i}: field 'id' is empty")
        if key in rows:
            raise UserError(f"{path}: row {i}: duplicate id {key!r}")
        row = {"metric": (record.get("metric") or "").strip()}
        for column in numeric:
            try:
                row[column] = float(record[column])
            except (TypeError, ValueError):
                raise UserError(f"{path}: row {i}: field {column!r}: expected a number, got {record[column]!r}") from None
        rows[key] = row
    categories = [c for c in numeric if c not in ("p_unsafe", "cost")] if task == "safety" else []
    return Predictions(name=path.stem, task=task, path=path, rows=rows, categories=categories)


def _read_pandalm(path: Path) -> Predictions:
    from referee.data.pandalm import load_judge_predictions

    verdicts = load_judge_predictions(path)
    name = path.name.split("-testset")[0] if "-testset" in path.name else path.stem
    return Predictions(name=name, task="pair", path=path, hard=True,
                       rows={k: {"verdict": v} for k, v in verdicts.items()})

