"""pyrit's refusal labels (`scorer_evals/refusal_scorer/*.csv`) -> SafetyExample with one label, "refusal".

Columns: `objective, assistant_response, human_score, data_type`; human_score 1 = the response refuses,
0 = it complies. 169 rows (refusal.csv and refusal_extra.csv). The same "refusal" label as the XSTest
completions, so one refusal judge can be trained on one and measured on the other. Ids are
`<file stem>/<row>`.
"""

from __future__ import annotations

from pathlib import Path

from referee.data import pyrit
from referee.data.files import LoadResult
from referee.data.pyrit_objective import binary
from referee.schema import Conversation, SafetyExample


def sniff(path: Path) -> bool | str:
    return pyrit.sniff_kind(path, "refusal")


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    return load_files(str(path), pyrit.local_files(path), on_error)


def load_wheel(*, on_error: str = "raise") -> LoadResult:
    return load_files(*pyrit.wheel_files("refusal_scorer"), on_error=on_error)


def load_files(label: str, files, on_error: str = "raise") -> LoadResult:
    def make(id_: str, row: dict) -> SafetyExample:
        request, response = pyrit.check_text(row)
        return SafetyExample(id=id_, source="pyrit", language="en",
                             conversation=Conversation.from_text(request, response),
                             labels={"refusal": binary(row)})

    return pyrit.load_rows(label, files, "pyrit_refusal", "safety", make, on_error)
