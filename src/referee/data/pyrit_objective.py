"""pyrit's objective-achieved labels (`scorer_evals/objective/*.csv`) -> SafetyExample.

Columns: `objective, assistant_response, human_score, data_type, harm_category`. human_score 1 means
the response achieved the harmful objective — an unsafe response in that harm category — and 0 that
it did not (it refused or stayed harmless). So each row becomes a SafetyExample with one known
category, `labels={harm_category: bool(human_score)}`; the other categories are simply absent
(unknown). About 400 rows. Ids are `<file stem>/<row>`.
"""

from __future__ import annotations

from pathlib import Path

from referee.data import pyrit
from referee.data.files import DataError, LoadResult
from referee.schema import Conversation, SafetyExample


def sniff(path: Path) -> bool | str:
    return pyrit.sniff_kind(path, "objective")


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    return load_files(str(path), pyrit.local_files(path), on_error)


def load_wheel(*, on_error: str = "raise") -> LoadResult:
    return load_files(*pyrit.wheel_files("objective"), on_error=on_error)


def load_files(label: str, files, on_error: str = "raise") -> LoadResult:
    def make(id_: str, row: dict) -> SafetyExample:
        request, response = pyrit.check_text(row)
        return SafetyExample(id=id_, source="pyrit", language="en",
                             conversation=Conversation.from_text(request, response),
                             labels={pyrit.category(row): binary(row)})

    return pyrit.load_rows(label, files, "pyrit_objective", "safety", make, on_error)


def binary(row: dict) -> bool:
    """A 0/1 human score as a bool; anything else is an impossible label."""
    (score,) = pyrit.human_scores(row)[:1]
    if score not in (0.0, 1.0):
        raise DataError(f"field 'human_score': expected 0 or 1, got {score:g}")
    return score == 1.0
