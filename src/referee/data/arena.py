"""Chatbot Arena / Kaggle "LLM Classification Finetuning" CSV -> PairExample.

Columns: `id, model_a, model_b, prompt, response_a, response_b, winner_model_a, winner_model_b,
winner_tie` (train) or `id, prompt, response_a, response_b` (test: label None). `prompt` and the
responses are JSON-encoded lists of turns; turn i of the prompt pairs with turn i of each response, so
A and B are whole conversations that share their user turns. A `null` turn is read as empty text and
counted in the notes. Lone UTF-16 surrogates (broken emoji in the source) become U+FFFD.
"""

from __future__ import annotations

import json
from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, csv_header, read_csv
from referee.schema import Conversation, PairExample, Turn

TEXT_COLUMNS = ("id", "prompt", "response_a", "response_b")
WINNER_COLUMNS = ("winner_model_a", "winner_model_b", "winner_tie")
LABELS = ("A", "B", "tie")


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".csv"):
        return "not a .csv file"
    header = csv_header(path)
    missing = [c for c in TEXT_COLUMNS if c not in header]
    if missing:
        if "id" in header and all(c in header for c in WINNER_COLUMNS):
            return "a Kaggle submission file (id + winner probabilities): predictions, not conversations"
        return f"no column(s) {', '.join(missing)}"
    return True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    header, rows = read_csv(path)
    missing = [c for c in TEXT_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(header)})")
    labelled = [c for c in WINNER_COLUMNS if c in header]
    if labelled and len(labelled) != len(WINNER_COLUMNS):
        raise DataError(f"{path}: has {', '.join(labelled)} but not "
                        f"{', '.join(c for c in WINNER_COLUMNS if c not in labelled)}")
    nulls = [0]

    def make(row: dict, index: int) -> PairExample:
        prompts = turns(row, "prompt", nulls)
        side_a, side_b = turns(row, "response_a", nulls), turns(row, "response_b", nulls)
        for name, side in (("response_a", side_a), ("response_b", side_b)):
            if len(side) != len(prompts):
                raise DataError(f"field {name!r}: {len(side)} turns, but 'prompt' has {len(prompts)}")
        return PairExample(
            id=row["id"].strip(), source="arena",
            a=conversation(prompts, side_a), b=conversation(prompts, side_b),
            label=winner(row) if labelled else None,
            model_a=row.get("model_a") or None, model_b=row.get("model_b") or None,
        )

    result = collect(path, "arena", "pair", rows, make, on_error)
    if nulls[0]:
        result.notes.append(f"{nulls[0]} null turn(s) read as empty text")
    return result


def turns(row: dict, name: str, nulls: list[int]) -> list[str]:
    """A JSON list of turns, with null as "" (counted) and lone surrogates replaced."""
    try:
        value = json.loads(row[name])
    except json.JSONDecodeError as err:
        raise DataError(f"field {name!r}: not a JSON list of turns ({err.msg} at column {err.colno})") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise DataError(f"field {name!r}: expected a non-empty JSON list of turns, got {row[name][:60]!r}")
    out = []
    for item in value:
        if item is None:
            nulls[0] += 1
            item = ""
        if not isinstance(item, str):
            raise DataError(f"field {name!r}: expected text turns, got {type(item).__name__}")
        out.append(clean_surrogates(item))
    return out


def clean_surrogates(text: str) -> str:
    """Join valid surrogate pairs and replace lone ones with U+FFFD, so the text encodes as UTF-8.

    >>> clean_surrogates("ok \\ud83d\\ude00 bad \\ud83d")
    'ok 😀 bad �'
    """
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def conversation(prompts: list[str], responses: list[str]) -> Conversation:
    return Conversation(tuple(Turn(role, text) for p, r in zip(prompts, responses)
                              for role, text in (("user", p), ("assistant", r))))


def winner(row: dict) -> str:
    """The one-hot winner columns as A / B / tie; anything but exactly one 1 is an impossible label."""
    values = []
    for name in WINNER_COLUMNS:
        raw = (row.get(name) or "").strip()
        try:
            value = float(raw)
        except ValueError:
            raise DataError(f"field {name!r}: expected 0 or 1, got {raw!r}") from None
        if value not in (0.0, 1.0):
            raise DataError(f"field {name!r}: expected 0 or 1, got {raw!r}")
        values.append(value)
    if sum(values) != 1:
        shown = ", ".join(f"{n}={v:g}" for n, v in zip(WINNER_COLUMNS, values))
        raise DataError(f"fields {', '.join(WINNER_COLUMNS)}: one-hot winner sums to {sum(values):g} ({shown}); "
                        "exactly one must be 1")
    return LABELS[values.index(1.0)]
