"""PandaLM human test set (a JSON array) -> PairExample with soft labels; and the LLM judges'
predictions shipped beside it, as outside-judge labels.

Each record: `idx, motivation_app, cmp_key, instruction, input, response1, response2, annotator1..3`,
an annotator saying 0 (tie), 1 or 2. The soft label is the share of annotators per outcome
(p(A), p(B), p(tie)); the label is the majority, an even split counting as a tie. The request is the
instruction, followed by the input when there is one. `cmp_key` ("bloom-7b_llama-7b") names the two
models. Example ids are `str(idx)`, the same keys `load_judge_predictions` returns.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, as_text, base_name, collect, first_json_record, json_rows, read_json, text_field
from referee.schema import Conversation, PairExample

ANNOTATORS = ("annotator1", "annotator2", "annotator3")
FIELDS = ("idx", "instruction", "response1", "response2")
# Prediction files name their answer field after the judge: gpt_result, pandalm_result, ...
VERDICTS = {"1": "A", "2": "B", "0": "tie", "tie": "tie"}


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".json"):
        return "not a .json file"
    record = first_json_record(path)
    if not isinstance(record, dict):
        return "not a JSON array of records"
    if prediction_field(record):
        return (f"a PandaLM judge-prediction file ('{prediction_field(record)}' per idx), not examples: "
                "read it with referee.data.pandalm.load_judge_predictions")
    missing = [f for f in FIELDS + ANNOTATORS if f not in record]
    return f"first record has no {', '.join(missing)}" if missing else True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        request = text_field(row, "instruction").strip()
        extra = "" if row.get("input") is None else as_text(row["input"], "input")
        if extra.strip():
            request = f"{request}\n\n{extra.strip()}"
        models = str(row.get("cmp_key") or "").split("_", 1)
        return PairExample(
            id=str(row["idx"]), source="pandalm",
            a=Conversation.from_text(request, text_field(row, "response1")),
            b=Conversation.from_text(request, text_field(row, "response2")),
            soft=soft_label(row),
            model_a=models[0] or None if len(models) == 2 else None,
            model_b=models[1] or None if len(models) == 2 else None,
        )

    return collect(path, "pandalm", "pair", json_rows(path), make, on_error)


def soft_label(row: dict) -> tuple[float, float, float]:
    """(p(A), p(B), p(tie)) from the annotators present; 0 = tie, 1 = response1, 2 = response2.

    >>> soft_label({"annotator1": 2, "annotator2": 2, "annotator3": 0})
    (0.0, 0.6666666666666666, 0.3333333333333333)
    """
    counts = {"A": 0, "B": 0, "tie": 0}
    for name in ANNOTATORS:
        if name not in row:
            raise DataError(f"missing field {name!r}")
        vote = VERDICTS.get(str(row[name]).strip().lower())
        if vote is None:
            raise DataError(f"field {name!r}: expected 0 (tie), 1 or 2, got {row[name]!r}")
        counts[vote] += 1
    n = sum(counts.values())
    return counts["A"] / n, counts["B"] / n, counts["tie"] / n


def prediction_field(record: dict) -> str | None:
    """The `<judge>_result` field of a judge-prediction record, if it is one."""
    if "idx" not in record or "response1" in record:
        return None
    return next((k for k in record if k.endswith("_result")), None)


def load_judge_predictions(path: str | Path) -> dict[str, str | None]:
    """An LLM judge's verdicts on the PandaLM test set: {str(idx): "A" | "B" | "tie" | None}.

    Keys match the ids of `load(testset)`. Verdict "1" -> "A", "2" -> "B", "0"/"Tie" -> "tie"; an
    answer the judge failed to give (the GPT file's "garbage") is None, so callers count it as a
    failure rather than silently dropping the row."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise DataError(f"{path}: expected a JSON array of prediction records")
    field = prediction_field(data[0])
    if field is None:
        raise DataError(f"{path}: record 0: expected 'idx' and a '<judge>_result' field, found {', '.join(data[0])}")
    out: dict[str, str | None] = {}
    for i, record in enumerate(data):
        if not isinstance(record, dict) or "idx" not in record or field not in record:
            raise DataError(f"{path}: record {i}: expected 'idx' and {field!r}")
        key = str(record["idx"])
        if key in out:
            raise DataError(f"{path}: record {i}: duplicate idx {key}")
        out[key] = VERDICTS.get(str(record[field]).strip().lower())
    return out
