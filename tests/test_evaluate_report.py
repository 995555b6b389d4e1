"""The HTML report for a score, a safety and a pair judge together, opened in a real headless
chromium: it renders offline, every image decodes, and the headline tables are there."""

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from referee.data import load
from referee.evaluate import evaluate, write_report
from referee.evaluate.outputs import Predictions
from referee.judges import PairJudge, SafetyJudge, ScoreJudge

from test_evaluate_cli import TOPICS, _good, _write_csv, pair_csv  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _chromium() -> str:
    """Debian's chromium, installed when missing; skip with the reason when it cannot be."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get"):
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                       shell=True, capture_output=True, timeout=600)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed and could not be installed with apt-get")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    return CHROMIUM


@pytest.fixture
def report(tmp_path, pair_csv):  # noqa: F811
    pairs = load(pair_csv).examples
    pair = PairJudge(progress=False).fit(pairs).calibrate(pairs)
    scores = _write_csv(tmp_path / "scores.csv", ["id", "prompt", "response", "score", "metric"],
                        [[f"s{i}", f"How do I {t}?", _good(t) if i % 3 else "No.", 8 + i % 3 if i % 3 else 1,
                          "helpfulness" if i % 2 else "clarity"] for i, t in enumerate(TOPICS)])
    score_examples = load(scores).examples
    safety_csv = _write_csv(tmp_path / "safety.csv", ["id", "prompt", "response", "label", "category"],
                            [[f"x{i}", f"How do I {t}?", "Hurt them <b>badly</b>." if i % 2 else _good(t), i % 2,
                              "H2" if i % 4 < 2 else "HR"] for i, t in enumerate(TOPICS)])
    safety_examples = load(safety_csv).examples
    results = [evaluate(ScoreJudge(progress=False).fit(score_examples), score_examples, name="score-tfidf",
                        where="scores.csv", n_boot=100),
               evaluate(SafetyJudge(progress=False).fit(safety_examples), safety_examples, name="safety-tfidf",
                        where="safety.csv", n_boot=100),
               evaluate(pair, pairs, name="pair-tfidf", where="pairs.csv", n_boot=100),
               evaluate(label_prior(pairs), pairs, name="baseline: label prior", where="pairs.csv", n_boot=100)]
    return write_report(tmp_path / "report", results)


def label_prior(pairs) -> Predictions:
    """The trivial pair baseline: every row gets the share of A, B and tie among the labels."""
    prior = [sum(p.label == k for p in pairs) / len(pairs) for k in ("A", "B", "tie")]
    return Predictions("baseline: label prior", "pair", Path("<baseline>"),
                       {p.id: dict(zip(("winner_model_a", "winner_model_b", "winner_tie"), prior)) for p in pairs})


def test_summary_says_in_words_whether_the_judge_beats_the_baseline(report):
    """16 pairs: 8 A, 6 B, 2 ties; the prior (8/16, 6/16, 2/16) has log loss
    -(8 ln 8/16 + 6 ln 6/16 + 2 ln 2/16) / 16 = 0.974; the TF-IDF judge, calibrated on the same rows, is far
    below it, with intervals apart."""
    html = report.read_text()
    assert html.index("In short") < html.index("Score judges")
    saved = json.loads((report.parent / "metrics.json").read_text())
    assert saved[-1]["metrics"]["log_loss"] == pytest.approx(
        -(8 * math.log(8 / 16) + 6 * math.log(6 / 16) + 2 * math.log(2 / 16)) / 16, abs=1e-6)
    assert "better than baseline: label prior (0.974 [" in html and "the intervals do not overlap" in html
    assert "no baseline was evaluated on these rows" in html  # the score and safety sections have none
    # The baseline is a row (greyed) and a point in the chart, never a set of empty diagnostic figures.
    assert "<tr class='baseline'><th>baseline: label prior</th>" in html
    assert "<h3>baseline: label prior" not in html
    assert " nan" not in re.sub(r'src="data:[^"]*"', "", html).lower()
    # Category codes are spelt out.
    assert "hate/threatening (H2)" in html and "harassment (HR)" in html


def test_verdicts_cover_worse_and_overlapping():
    from referee.evaluate.evaluators import Evaluation
    from referee.evaluate.report import verdict

    def ev(name, value, low, high):
        return Evaluation(judge=name, task="pair", n=10, metrics={"log_loss": value}, ci={"log_loss": [low, high]},
                          primary="log_loss")

    base = ev("baseline: label prior", 1.099, 1.09, 1.10)
    assert verdict(ev("j", 1.12, 1.10, 1.14), base, "log_loss") == ("verdict-bad", "no better than baseline: label prior (1.099 [1.090, 1.100])")
    assert verdict(ev("j", 1.05, 1.00, 1.095), base, "log_loss")[0] == "verdict-even"
    assert verdict(ev("j", 1.05, 1.00, 1.08), base, "log_loss")[0] == "verdict-good"


@pytest.mark.browser
def test_report_renders_in_chromium_with_every_image(report, tmp_path):
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        headings = page.locator("h2").all_inner_texts()
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        # Every table fits the page: no horizontal scrolling at a laptop's width.
        overflow = page.evaluate("Array.from(document.querySelectorAll('.scroll')).filter(e => e.closest('section'))"
                                 ".map(e => e.scrollWidth - e.clientWidth)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(widths) >= 9 and all(w > 0 for w in widths), widths
    assert [h.split()[0] for h in headings] == ["In", "Score", "Safety", "Pair"]
    assert overflow and max(overflow) <= 0, overflow
    # Offline: the page asks for nothing but itself (images are data: URIs).
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
    saved = json.loads((report.parent / "metrics.json").read_text())
    assert [r["task"] for r in saved] == ["score", "safety", "pair", "pair"]
