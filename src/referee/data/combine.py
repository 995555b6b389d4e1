"""Several data files as one training set, and a safety set narrowed to the categories a user names.

    res = load_all(["xstest_v2_completions_gpt4.csv", "xstest_v2_completions_llama2new.csv"])
    res.examples          # ids namespaced by file where files share ids: "xstest_v2_completions_gpt4.csv:v2-1"
    only_categories(res.examples, ["refusal"])   # SafetyExamples that label refusal and nothing else
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from referee.data.files import DataError, LoadResult
from referee.schema import category_name

# Pair data serves pair and reward judges alike; every other task must match exactly.
SAME_TASK = {"reward": "pair"}


def load_all(paths, format: str | None = None, *, columns=None, on_error: str = "raise") -> LoadResult:
    """`referee.data.load` on each path, the examples concatenated in order.

    Files of different tasks are an error naming both. When two files share an id (XSTest's three
    completion files all use `v2-N`), every id is prefixed with its file's name, so that rows stay
    distinct and each can be traced to its file; ids that are unique across files are kept as they are.

    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> days = [Path(tmp.name) / "monday.jsonl", Path(tmp.name) / "tuesday.jsonl"]
    >>> for day in days:
    ...     _ = day.write_text('{"id": "1", "prompt": "Hi", "response_a": "Hello!", "response_b": "Go away.", '
    ...                        '"label": "A"}\\n')
    >>> both = load_all(days)
    >>> [e.id for e in both.examples], both.task
    (['monday.jsonl:1', 'tuesday.jsonl:1'], 'pair')
    >>> tmp.cleanup()
    """
    from referee.data import load

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise DataError("no data: give at least one file")
    results = [load(path, format, columns=columns, on_error=on_error) for path in paths]
    if len(results) == 1:
        return results[0]
    first = results[0]
    for other in results[1:]:
        if other.task != first.task:
            raise DataError(f"{other.path} holds {other.task} examples but {first.path} holds {first.task} "
                            "examples; train on one task at a time")
    ids = [e.id for r in results for e in r.examples]
    notes = [f"{r.path}: {note}" for r in results for note in r.notes]
    if len(set(ids)) < len(ids):
        names = _file_names(paths)
        results = [replace(r, examples=[replace(e, id=f"{name}:{e.id}") for e in r.examples])
                   for r, name in zip(results, names)]
        notes.append(f"ids shared between files are namespaced by file: '{names[0]}:<id>', ...")
    return LoadResult(examples=[e for r in results for e in r.examples],
                      format="+".join(dict.fromkeys(r.format for r in results)), task=first.task,
                      path=", ".join(str(r.path) for r in results),
                      skipped=[(f"{r.path}: {where}", why) for r in results for where, why in r.skipped], notes=notes)


def _file_names(paths) -> list[str]:
    """Short names that tell the files apart: the file name, or the whole path where two names match."""
    names = [Path(str(p)).name for p in paths]
    return [name if names.count(name) == 1 else str(p) for name, p in zip(names, paths)]


def only_categories(examples, categories) -> list:
    """Safety examples labelled with `categories` only (the others dropped from each row's labels);
    rows that label none of them are left out. A category no row labels is an error listing those
    that exist, spelt out.

    >>> from referee.schema import Conversation, SafetyExample
    >>> rows = [SafetyExample(id="1", conversation=Conversation.from_text("Hi", "Get lost."),
    ...                       labels={"HR": True, "V": False}),
    ...         SafetyExample(id="2", conversation=Conversation.from_text("Hi", "Hello!"), labels={"V": False})]
    >>> [(e.id, e.labels) for e in only_categories(rows, ["HR"])]
    [('1', {'HR': True})]
    >>> only_categories(rows, ["S3"])
    Traceback (most recent call last):
    ...
    referee.data.files.DataError: --categories: no row labels 'S3'; the data labels: harassment (HR), violence (V)
    """
    categories = list(categories)
    present = {c for e in examples for c, v in e.labels.items() if v is not None}
    missing = [c for c in categories if c not in present]
    if missing:
        known = ", ".join(category_name(c) for c in sorted(present)) or "none"
        raise DataError(f"--categories: no row labels {', '.join(map(repr, missing))}; the data labels: {known}")
    kept = [replace(e, labels={c: e.labels.get(c) for c in categories}) for e in examples]
    return [e for e in kept if any(v is not None for v in e.labels.values())]
