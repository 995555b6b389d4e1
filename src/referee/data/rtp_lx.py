"""RTP-LX JSON lines -> one ScoreExample per (prompt, category), on RTP-LX's 1-5 scale.

Each line: `Prompt`, `Completion` (empty in the released prompts), `Index`, `Locale` ("HI"),
`Annotations` {category: mean of three native raters, 1-5} over Toxicity, IdentityAttack, Bias,
Microaggression, Violence, SelfHarm, Insult, SexualContent, and `AnnotationsRaw`. The text judged is
the prompt (and the completion when there is one). Ids are `<Index>/<category>`; the metric is the
category; the language is the locale, lower-cased.
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, first_json_record, jsonl_rows, text_field
from referee.schema import Conversation, ScoreExample

CATEGORIES = ("Toxicity", "IdentityAttack", "Bias", "Microaggression", "Violence", "SelfHarm", "Insult", "SexualContent")
SCALE = (1.0, 5.0)


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith((".jsonl", ".json")):
        return "not a .jsonl file"
    record = first_json_record(path)
    if not isinstance(record, dict) or "Prompt" not in record or "Annotations" not in record:
        return "first record has no 'Prompt' and 'Annotations'"
    return True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> list[ScoreExample]:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        annotations = row.get("Annotations")
        if not isinstance(annotations, dict):
            raise DataError(f"field 'Annotations': expected an object of category scores, got {annotations!r}")
        missing = [c for c in CATEGORIES if c not in annotations]
        if missing:
            raise DataError(f"field 'Annotations': missing categor(ies) {', '.join(missing)}")
        prompt = text_field(row, "Prompt")
        completion = row.get("Completion") or None
        conversation = Conversation.from_text(prompt, completion)
        key = str(row.get("Index", index))
        language = str(row.get("Locale") or "").lower() or None
        examples = []
        for category in CATEGORIES:
            score = annotations[category]
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                raise DataError(f"field 'Annotations.{category}': expected a number, got {score!r}")
            if not SCALE[0] <= score <= SCALE[1]:
                raise DataError(f"field 'Annotations.{category}': {score} is outside RTP-LX's 1-5 scale")
            examples.append(ScoreExample(id=f"{key}/{category}", source="rtp_lx", language=language,
                                         conversation=conversation, metric=category, score=float(score),
                                         scale=SCALE))
        return examples

    return collect(path, "rtp_lx", "score", jsonl_rows(path), make, on_error)
