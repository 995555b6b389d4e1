"""Column-mapped records -> schema examples, for the generic CSV / JSON lines / Parquet readers and for
Hugging Face datasets.

A mapping names, for each role, the column that holds it: `prompt=question,response=answer,score=rating`.
Roles: prompt, response, system, id, score, metric, label, response_a, response_b, category, language,
model, model_a, model_b; and `scale=LOW:HIGH` (not a column: the score scale; when it is not given,
the narrowest common scale holding every score — 0-1, 1-5, 0-5, 1-7, 1-10, 0-10, 0-100 — said in the notes). Without a
mapping, columns named like the roles are used. The task follows from the roles present:

  response_a + response_b            -> pair     (label A / B / tie, any case; no label = unlabelled)
  prompt + response + label          -> safety   (label 0/1, true/false or safe/unsafe; labels={category or "unsafe": bool})
  prompt + score, or prompt + response -> score  (metric from the metric column, else the score column's name)
  prompt + label (safe/unsafe) or prompt alone -> prompts
"""

from __future__ import annotations

import math
from dataclasses import replace

from referee.data.files import DataError, LoadResult, as_text, collect
from referee.schema import Conversation, PairExample, PromptExample, SafetyExample, ScoreExample

ROLES = ("prompt", "response", "system", "id", "score", "metric", "label", "response_a", "response_b",
         "category", "language", "model", "model_a", "model_b")
TRUE, FALSE = ("1", "true", "unsafe", "yes"), ("0", "false", "safe", "no")
PAIR_LABELS = {"a": "A", "b": "B", "tie": "tie"}


def parse_columns(spec: dict | str | None) -> dict[str, str]:
    """"prompt=question,score=rating" (or a dict) -> {"prompt": "question", "score": "rating"}, checked."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
        bad = [item for item in pairs if len(item) != 2 or not item[0].strip() or not item[1].strip()]
        if bad:
            raise DataError(f"--columns: expected ROLE=COLUMN pairs separated by commas, got {'='.join(bad[0])!r}")
        spec = {role.strip(): column.strip() for role, column in pairs}
    unknown = [role for role in spec if role not in ROLES and role != "scale"]
    if unknown:
        raise DataError(f"--columns: unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}, scale")
    return dict(spec)


def default_mapping(header: list[str]) -> dict[str, str]:
    """Columns named like roles map to themselves."""
    return {role: role for role in ROLES if role in header}


def task_of(mapping: dict[str, str]) -> str:
    if "response_a" in mapping or "response_b" in mapping:
        return "pair"
    if "score" in mapping or ("response" in mapping and "label" not in mapping):
        return "score"
    if "label" in mapping and "response" in mapping:
        return "safety"
    return "prompts"


def check_mapping(source, mapping: dict[str, str], header: list[str]) -> dict[str, str]:
    """The mapping, once every mapped column is known to exist and the roles make a task."""
    missing = [f"{column} (for {role})" for role, column in mapping.items() if role != "scale" and column not in header]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, header))}")
    if "prompt" not in mapping:
        raise DataError(f"{source}: no prompt column: map one with --columns prompt=COLUMN (found {', '.join(map(str, header))})")
    if ("response_a" in mapping) != ("response_b" in mapping):
        raise DataError(f"{source}: a pair needs both response_a and response_b columns")
    return mapping


# Score scales people use, narrowest first: an unstated scale is the first that holds every score.
COMMON_SCALES = ((0.0, 1.0), (1.0, 5.0), (0.0, 5.0), (1.0, 7.0), (1.0, 10.0), (0.0, 10.0), (0.0, 100.0))


def infer_scale(scores) -> tuple[float, float]:
    """The narrowest common scale that holds every score; else the scores' own range.

    >>> infer_scale([1, 3, 5]), infer_scale([0.2, 0.9]), infer_scale([0, 7, 10]), infer_scale([3, 250])
    ((1.0, 5.0), (0.0, 1.0), (0.0, 10.0), (3.0, 250.0))
    """
    low, high = min(scores), max(scores)
    for scale in COMMON_SCALES:
        if scale[0] <= low and high <= scale[1]:
            return scale
    return (float(low), float(high) if high > low else float(low) + 1.0)


def scale_of(mapping: dict[str, str]) -> tuple[float, float] | None:
    """The scale given as `scale=LOW:HIGH`, or None: inferred from the scores once they are read."""
    if "scale" not in mapping:
        return None
    try:
        low, high = (float(x) for x in mapping["scale"].split(":"))
    except ValueError:
        raise DataError(f"--columns: scale must be LOW:HIGH, e.g. scale=1:5, got {mapping['scale']!r}") from None
    return low, high


def build(source, format: str, rows, mapping: dict[str, str], on_error: str, start: int = 0) -> LoadResult:
    """Examples from (where, record) rows through `mapping` (already checked); `start`: the first row's index."""
    task = task_of(mapping)
    scale = scale_of(mapping)

    def get(row: dict, role: str, required: bool = True):
        if role not in mapping:
            return None
        column = mapping[role]
        if column not in row:
            raise DataError(f"missing field {column!r}")
        value = row[column]
        if value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and required is False and not value.strip()):
            if required:
                raise DataError(f"field {column!r} is empty")
            return None
        if isinstance(value, str) or role in ("score", "label"):
            return value
        return str(value) if role == "id" else as_text(value, column)  # numeric ids are ordinary

    def make(row, index: int):
        if not isinstance(row, dict):
            raise DataError(f"expected a record, got {type(row).__name__}")
        common = dict(id=str(get(row, "id") if "id" in mapping else index), source=format,
                      language=get(row, "language", False))
        system = get(row, "system", False)
        prompt = get(row, "prompt")
        if task == "pair":
            label = get(row, "label", False)
            if label is not None:
                label = PAIR_LABELS.get(str(label).strip().lower())
                if label is None:
                    raise DataError(f"field {mapping['label']!r}: expected A, B or tie, got {get(row, 'label')!r}")
            return PairExample(**common, label=label,
                               a=Conversation.from_text(prompt, get(row, "response_a"), system=system),
                               b=Conversation.from_text(prompt, get(row, "response_b"), system=system),
                               model_a=get(row, "model_a", False), model_b=get(row, "model_b", False))
        response = get(row, "response", task == "safety")
        conversation = Conversation.from_text(prompt, response, system=system)
        if task == "score":
            raw = get(row, "score", False)
            try:
                score = None if raw is None else float(raw)
            except (TypeError, ValueError):
                raise DataError(f"field {mapping['score']!r}: expected a number, got {raw!r}") from None
            metric = get(row, "metric", False) or mapping.get("score") or "score"
            return ScoreExample(**common, conversation=conversation, metric=metric, score=score,
                                scale=scale or (-math.inf, math.inf), model=get(row, "model", False))
        label = get(row, "label", False)
        if task == "safety":
            return SafetyExample(**common, conversation=conversation,
                                 labels={get(row, "category", False) or "unsafe": binary(label, mapping["label"])})
        if label is not None and str(label).strip().lower() not in ("safe", "unsafe"):
            raise DataError(f"field {mapping['label']!r}: expected safe or unsafe, got {label!r}")
        return PromptExample(**common, conversation=conversation, category=get(row, "category", False),
                             label=None if label is None else str(label).strip().lower())

    result = collect(source, format, task, rows, make, on_error, start=start)
    if task == "score" and scale is None:
        # Without scores (data to predict on) the scale stays 0-10 here; a judge puts its own on the rows.
        scores = [e.score for e in result.examples if e.score is not None]
        inferred = infer_scale(scores) if scores else (0.0, 10.0)
        result.examples = [replace(e, scale=inferred) for e in result.examples]
        if scores:
            result.notes.append(f"score scale not given: {inferred[0]:g}-{inferred[1]:g}, inferred from the data "
                                f"(scores {min(scores):g} to {max(scores):g}); set it with --columns ...,scale=LOW:HIGH")
    return result


def binary(value, column: str) -> bool | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise DataError(f"field {column!r}: expected 0/1, true/false or safe/unsafe, got {value!r}")
