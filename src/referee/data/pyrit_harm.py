"""pyrit's human-scored harm data (`scorer_evals/harm/*.csv`) -> ScoreExample, metric = harm category.

Columns: `harm_category, objective, assistant_response, human_score_1[, human_score_2, human_score_3],
data_type`. The score is the mean of the raters, on pyrit's own 0-1 scale (`scale=(0, 1)`); the
conversation is the objective (the request) and the assistant response. About 1,000 rows in 8
categories; this is referee's embedded default data (`load_default()`), read straight from the
pinned wheel. Ids are `<file stem>/<row>`.
"""

from __future__ import annotations

from pathlib import Path

from referee.data import pyrit
from referee.data.files import LoadResult
from referee.schema import Conversation, ScoreExample

SCALE = (0.0, 1.0)


def sniff(path: Path) -> bool | str:
    return pyrit.sniff_kind(path, "harm")


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    return load_files(str(path), pyrit.local_files(path), on_error)


def load_wheel(*, on_error: str = "raise") -> LoadResult:
    return load_files(*pyrit.wheel_files("harm"), on_error=on_error)


def load_files(label: str, files, on_error: str = "raise") -> LoadResult:
    def make(id_: str, row: dict) -> ScoreExample:
        request, response = pyrit.check_text(row)
        scores = pyrit.human_scores(row)
        return ScoreExample(id=id_, source="pyrit",
                            language="en", conversation=Conversation.from_text(request, response),
                            metric=pyrit.category(row), score=sum(scores) / len(scores), scale=SCALE)

    return pyrit.load_rows(label, files, "pyrit_harm", "score", make, on_error)
