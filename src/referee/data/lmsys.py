"""LMSYS battle records (JSON lines, a JSON array, or Parquet) -> PairExample: MT-Bench human judgments
(`lmsys/mt_bench_human_judgments`) and Chatbot Arena conversations (`lmsys/chatbot_arena_conversations`).

Fields: `model_a, model_b, winner, conversation_a, conversation_b` (each a list of `{role, content}`
messages), and where present `question_id, judge, turn`. winner "model_a" = A, "model_b" = B, "tie" and
"tie (bothbad)" = tie. `turn` is the turn the judge voted on: MT-Bench records carry both turns of the
conversation and a vote on each, so a side is cut after its `turn`-th answer (turn 1 is judged without
the second question); an Arena record's `turn` is its number of turns, so nothing is cut. One MT-Bench
question is judged by several people on several model pairs: the id joins `question_id`, the models,
the judge and the turn (`81/alpaca-13b/gpt-3.5-turbo/expert_17/1`).
"""

from __future__ import annotations

from pathlib import Path

from referee.data.files import DataError, LoadResult, base_name, collect, first_json_record, head, json_rows, jsonl_rows
from referee.schema import Conversation, PairExample, Turn

FIELDS = ("model_a", "model_b", "winner", "conversation_a", "conversation_b")
WINNERS = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie"}


def sniff(path: Path) -> bool | str:
    name = base_name(path)
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            names = set(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as err:
            return f"unreadable Parquet: {err}"
    elif name.endswith((".json", ".jsonl")):
        record = first_json_record(path)
        if not isinstance(record, dict):
            return "first record is not a JSON object"
        names = set(record)
    else:
        return "not a .json, .jsonl or .parquet file"
    missing = [f for f in FIELDS if f not in names]
    return f"first record has no {', '.join(repr(m) for m in missing)}" if missing else True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    def make(row, index: int) -> PairExample:
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}")
        label = WINNERS.get(str(row.get("winner")).strip())
        if label is None:
            raise DataError(f"field 'winner': expected one of {', '.join(WINNERS)}, got {row.get('winner')!r}")
        turn = row.get("turn")
        if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int) or turn < 1):
            raise DataError(f"field 'turn': expected a turn number from 1, got {turn!r}")
        models = [str(row[m]).strip() for m in ("model_a", "model_b")]
        parts = [row.get("question_id", index), *models, row.get("judge"), turn]
        return PairExample(id="/".join(str(p) for p in parts if p not in (None, "")), source="lmsys",
                           a=conversation(row, "conversation_a", turn), b=conversation(row, "conversation_b", turn),
                           label=label, model_a=models[0] or None, model_b=models[1] or None)

    if base_name(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = [(f"row {i + 1}", record) for i, record in enumerate(pq.read_table(path).to_pylist())]
    elif head(path, 4096).lstrip().startswith("["):
        rows = json_rows(path)
    else:
        rows = jsonl_rows(path)
    return collect(path, "lmsys", "pair", rows, make, on_error)


def conversation(row: dict, name: str, turn: int | None) -> Conversation:
    """The messages up to the `turn`-th assistant answer (all of them without `turn`)."""
    messages = row.get(name)
    if not isinstance(messages, list) or not messages:
        raise DataError(f"field {name!r}: expected a non-empty list of {{role, content}} messages")
    turns, answers = [], 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant") \
                or not isinstance(message.get("content"), str):
            raise DataError(f"field {name!r}, message {i + 1}: expected {{role: user|assistant, content: text}}, "
                            f"got {str(message)[:80]!r}")
        turns.append(Turn(message["role"], message["content"]))
        answers += message["role"] == "assistant"
        if turn is not None and answers == turn:
            break
    if turn is not None and answers < turn:
        raise DataError(f"field {name!r}: turn {turn} is judged, but the conversation has {answers} answer(s)")
    if turns[-1].role != "assistant":
        raise DataError(f"field {name!r}: the conversation does not end with an assistant answer")
    return Conversation(tuple(turns))
