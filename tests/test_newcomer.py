"""A newcomer's first day (issue 13): the README leads to the quickstart, the example files work without
../shared, and the three jobs — own ratings CSV, Arena-style pairs, a safety judge — run on small files."""

import re
from pathlib import Path

from referee.data import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_contents_quickstart_first_and_short():
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings[:2] == ["Contents", "Your own data in three commands"]  # right after the set-up commands
    assert README.index("make test") < README.index("## Contents")
    assert "## Which backend to use when" in README
    assert len(README.splitlines()) <= 250
    for anchor in re.findall(r"\]\(#([a-z0-9-]+)\)", README):  # every contents link lands on a heading
        assert anchor in {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}, anchor
    for link in re.findall(r"\]\(((?:docs|examples)/[^)]+)\)", README):
        assert (ROOT / link).is_file(), link
    assert "../shared" not in README.split("## The four judges")[0]  # the quickstart needs nothing outside


def test_example_files_load_as_the_readme_says():
    ratings = load(ROOT / "examples/ratings.csv", columns="prompt=question,response=answer,score=rating")
    assert (ratings.task, len(ratings)) == ("score", 42)
    assert {e.scale for e in ratings.examples} == {(1.0, 5.0)} and "inferred" in ratings.notes[0]
    pairs = load(ROOT / "examples/pairs.jsonl")
    assert (pairs.format, pairs.task, len(pairs)) == ("jsonl", "pair", 42)
    assert {e.label for e in pairs.examples} == {"A", "B", "tie"}
