"""The human-scored data inside the `pyrit==1.1.0` wheel (`pyrit/datasets/scorer_evals/`), shared by
the pyrit_harm, pyrit_objective and pyrit_refusal loaders: where the files are, and how to read them.

The CSVs open with `#` comment lines (dataset version, harm definition) before the header; only those
leading lines are comments — a `#` inside a quoted response (a Markdown heading) is text.
"""

from __future__ import annotations

from pathlib import Path

from referee.data import wheels
from referee.data.files import DataError, LoadResult, base_name, collect, csv_rows, head, read_text

NAME, VERSION = "pyrit", "1.1.0"
SHA256 = "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a"
ROOT = "pyrit/datasets/scorer_evals/"
# The `mini_*` files are samples that repeat rows of the full files (mini_hate_speech.csv holds 15 rows
# of hate_speech_multi_score.csv); reading both would count those rows twice.
SAMPLE_PREFIX = "mini_"


def wheel_files(folder: str) -> tuple[str, list[tuple[str, str]]]:
    """(label, [(file name, text)]) for every CSV in the pyrit wheel's scorer_evals/<folder>/."""
    wheel = wheels.fetch_wheel(NAME, VERSION, SHA256)
    names = [n for n in wheels.members(wheel, f"{ROOT}{folder}/", ".csv")
             if not Path(n).name.startswith(SAMPLE_PREFIX)]
    return f"{NAME}=={VERSION}:{ROOT}{folder}", [(Path(n).name, wheels.read_member(wheel, n)) for n in names]


def local_files(path: Path) -> list[tuple[str, str]]:
    """[(file name, text)] for a local scorer_evals CSV, or every CSV in a local folder (samples left out)."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if not p.name.startswith(SAMPLE_PREFIX))
        if not files:
            raise DataError(f"{path}: no .csv files in this folder")
        return [(p.name, read_text(p)) for p in files]
    return [(path.name, read_text(path))]


def strip_comments(text: str) -> tuple[str, int]:
    """(text after the leading `#` lines, number of lines dropped)."""
    lines = text.split("\n")
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    return "\n".join(lines[n:]), n


def header(text: str) -> list[str]:
    body, _ = strip_comments(text[:65536])
    return [h.strip() for h in body.split("\n", 1)[0].split(",")]


def rows(label: str, files: list[tuple[str, str]]) -> list[tuple[str, tuple[str, dict]]]:
    """Every row of every file as (where, (id, row)), where = "<file>: row N (line L)", id = "<stem>/N"."""
    out = []
    for name, text in files:
        body, dropped = strip_comments(text)
        if not body.strip():
            raise DataError(f"{label}/{name}: the file is empty")
        _, file_rows = csv_rows(body, Path(f"{label}/{name}"), first_line=dropped + 1)
        prefix = f"{name}: " if len(files) > 1 else ""
        out.extend((f"{prefix}{where}", (f"{Path(name).stem}/{n}", row))
                   for n, (where, row) in enumerate(file_rows, start=1))
    return out


def sniff_kind(path: Path, kind: str) -> bool | str:
    """Whether `path` (a CSV or a folder of them) is a pyrit `kind` file: harm, objective or refusal.

    Harm and objective files share their columns; harm scores are graded (0, .25, … 1, or several
    raters), objective scores are 0/1, and the folder name settles the rest."""
    if path.is_dir():
        found = sorted(p for p in path.glob("*.csv") if not p.name.startswith(SAMPLE_PREFIX))
        if not found:
            return "a folder with no .csv files"
        probe, folder = found[0], path.name
    elif base_name(path).endswith(".csv"):
        probe, folder = path, path.parent.name
    else:
        return "not a .csv file or folder"
    text = head(probe, 1 << 20)
    columns = header(text)
    if "objective" not in columns or "assistant_response" not in columns:
        return "no columns 'objective' and 'assistant_response'"
    multi = any(c.startswith("human_score_") for c in columns)
    if not multi and "human_score" not in columns:
        return "no column 'human_score'"
    if kind == "refusal":
        return True if "harm_category" not in columns else "has 'harm_category' (a harm or objective file)"
    if "harm_category" not in columns:
        return "no column 'harm_category'"
    graded = multi or folder == "harm" or (folder != "objective" and not binary_scores(text))
    if kind == "harm":
        return True if graded else "its scores are all 0 or 1 (an objective file)"
    return True if not graded else "its scores are graded 0-1 (a harm file)"


def binary_scores(text: str) -> bool:
    body, _ = strip_comments(text)
    try:
        _, file_rows = csv_rows(body, Path("probe"))
    except DataError:
        return False
    return all((row.get("human_score") or "").strip() in ("0", "1") for _, row in file_rows)


def human_scores(row: dict) -> list[float]:
    """`human_score` or `human_score_1..3` (several raters: all kept, the caller takes the mean)."""
    names = [k for k in row if k == "human_score" or k.startswith("human_score_")]
    if not names:
        raise DataError("missing field 'human_score' (or 'human_score_1')")
    scores = []
    for name in sorted(names):
        raw = (row[name] or "").strip()
        if raw == "":
            continue
        try:
            scores.append(float(raw))
        except ValueError:
            raise DataError(f"field {name!r}: expected a number in [0, 1], got {raw!r}") from None
        if not 0 <= scores[-1] <= 1:
            raise DataError(f"field {name!r}: {raw} is outside pyrit's 0-1 scale")
    if not scores:
        raise DataError(f"fields {', '.join(sorted(names))}: all empty")
    return scores


def category(row: dict, default: str = "") -> str:
    """The harm category as one spelling: `SEXUAL_CONTENT` and `sexual_content` are the same."""
    value = (row.get("harm_category") or default).strip().lower()
    if not value:
        raise DataError("field 'harm_category' is empty")
    return value


def check_text(row: dict) -> tuple[str, str]:
    """(objective, assistant_response) of a text row; other data types (images) are refused by name."""
    for name in ("objective", "assistant_response"):
        if name not in row:
            raise DataError(f"missing field {name!r}")
    kind = (row.get("data_type") or "text").strip()
    if kind != "text":
        raise DataError(f"field 'data_type': {kind!r} rows are not text; referee judges text only")
    return row["objective"], row["assistant_response"]


def load_rows(label: str, files, format: str, task: str, make, on_error: str) -> LoadResult:
    """Rows of every file through `make(id, row)`."""
    return collect(label, format, task, rows(label, files), lambda raw, index: make(*raw), on_error)
