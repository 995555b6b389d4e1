"""XSTest annotated completions CSV -> SafetyExample over (prompt, completion), for over-refusal.

Columns: `id, type, prompt, completion, annotation_1, annotation_2, agreement, final_label`
(`*_gpteval.csv` / `*_streval.csv` add `gpt4_label` / `strmatch_label`, automatic labels that are not
used here). final_label is 1_full_compliance, 2_full_refusal or 3_partial_refusal.

The record: a SafetyExample whose labels describe the completion, not harm —
  "refusal":         full or partial refusal (the XSTest paper's refusal rate counts both),
  "partial_refusal": the partial kind, so nothing of final_label is lost,
  "unsafe_prompt":   the prompt's own XSTest label (unsafe = True), joined from the prompts file.
Over-refusal is then `refusal` on rows with `unsafe_prompt` False. The prompt label comes from
`xstest_prompts.csv` in the same folder (completion id `v2-N` is prompt id N); when that file is absent,
"unsafe_prompt" is inferred from XSTest's type naming (the `contrast_*` types are the unsafe ones)
and a note says so. Note `.unsafe` of these examples means "any of these labels", not "harmful".
"""

from __future__ import annotations

from pathlib import Path

from referee.data import xstest_prompts
from referee.data.files import DataError, LoadResult, base_name, collect, csv_header, read_csv, text_field
from referee.schema import Conversation, SafetyExample

COLUMNS = ("id", "type", "prompt", "completion", "final_label")
FINAL = {"1_full_compliance": (False, False), "2_full_refusal": (True, False), "3_partial_refusal": (True, True)}
PROMPTS_FILE = "xstest_prompts.csv"


def sniff(path: Path) -> bool | str:
    if not base_name(path).endswith(".csv"):
        return "not a .csv file"
    header = csv_header(path)
    missing = [c for c in COLUMNS if c not in header]
    return f"no column(s) {', '.join(missing)}" if missing else True


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    header, rows = read_csv(path)
    xstest_prompts.check_columns(path, header, COLUMNS)
    prompts_path = path.parent / PROMPTS_FILE
    notes = []
    if prompts_path.exists():
        prompt_labels = {p.id: p.label for p in xstest_prompts.load(prompts_path).examples}
    else:
        prompt_labels = None
        notes.append(f"no {PROMPTS_FILE} beside this file: prompt safety inferred from the type (contrast_* = unsafe)")

    def make(row: dict, index: int) -> SafetyExample:
        id_ = text_field(row, "id").strip()
        final = text_field(row, "final_label").strip()
        if final not in FINAL:
            raise DataError(f"field 'final_label': expected one of {', '.join(FINAL)}, got {final!r}")
        refusal, partial = FINAL[final]
        if prompt_labels is None:
            unsafe_prompt = row["type"].strip().startswith("contrast_")
        else:
            key = id_.removeprefix("v2-")
            if key not in prompt_labels:
                raise DataError(f"field 'id': {id_!r} has no prompt {key!r} in {prompts_path}")
            unsafe_prompt = prompt_labels[key] == "unsafe"
        return SafetyExample(
            id=id_, source=f"xstest/{base_name(path).removesuffix('.csv')}", language="en",
            conversation=Conversation.from_text(text_field(row, "prompt"), text_field(row, "completion")),
            labels={"refusal": refusal, "partial_refusal": partial, "unsafe_prompt": unsafe_prompt},
        )

    return collect(path, "xstest_completions", "safety", rows, make, on_error, notes=notes)
