"""Anthropic HH-RLHF JSON lines (plain or .gz): `{"chosen": transcript, "rejected": transcript}` -> PairExample.

A transcript is `\\n\\nHuman: …\\n\\nAssistant: …`, repeated. Both transcripts usually share every turn
but the last; A is the chosen conversation and B the rejected one, in source order, so every label is
"A" — judges see both orders through swap augmentation and must not learn the position. The two
conversations are kept whole, so the few source rows whose earlier turns differ stay exact (counted in
the notes).
"""

from __future__ import annotations

import re
from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, first_json_record, jsonl_rows, text_field
from referee.schema import Conversation, PairExample, Turn

SPEAKER = re.compile(r"\n\n(Human|Assistant):")
ROLE = {"Human": "user", "Assistant": "assistant"}


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".jsonl") and not base_name(path).endswith(".json"):
        return "not a .jsonl file"
    record = first_json_record(path)
    if not isinstance(record, dict) or "chosen" not in record or "rejected" not in record:
        return "first record has no 'chosen' and 'rejected'"
    if not isinstance(record["chosen"], str) or not SPEAKER.search(record["chosen"]):
        return "'chosen' is not a '\\n\\nHuman: … \\n\\nAssistant: …' transcript"
    return True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    differing = [0]

    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        chosen = parse_transcript(text_field(row, "chosen"), "chosen")
        rejected = parse_transcript(text_field(row, "rejected"), "rejected")
        if chosen.turns[:-1] != rejected.turns[:-1]:
            differing[0] += 1
        return PairExample(id=str(index), source="hh_rlhf", a=chosen, b=rejected, label="A")

    result = collect(path, "hh_rlhf", "pair", jsonl_rows(path), make, on_error)
    if differing[0]:
        result.notes.append(f"{differing[0]} pair(s) whose chosen and rejected transcripts differ before the "
                            "final response (kept whole)")
    return result


def parse_transcript(text: str, field: str) -> Conversation:
    """`\\n\\nHuman: hi\\n\\nAssistant: hello` -> Conversation(user "hi", assistant "hello").

    Turn texts are stripped of the spaces around them; the transcript must end with an assistant turn."""
    parts = SPEAKER.split(text)
    if parts[0].strip():
        raise DataError(f"field {field!r}: text before the first 'Human:' turn: {parts[0][:60]!r}")
    turns = [Turn(ROLE[speaker], content.strip()) for speaker, content in zip(parts[1::2], parts[2::2])]
    if not turns:
        raise DataError(f"field {field!r}: no '\\n\\nHuman:' / '\\n\\nAssistant:' turns found")
    if turns[-1].role != "assistant":
        raise DataError(f"field {field!r}: the transcript ends with a Human turn, not the judged Assistant response")
    return Conversation(tuple(turns))
