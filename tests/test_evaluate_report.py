"""The HTML report for a score, a safety and a pair judge together, opened in a real headless
chromium: it renders offline, every image decodes, and the headline tables are there."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from referee.data import load
from referee.evaluate import evaluate, write_report
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
    safety_csv = _write_csv(tmp_path / "safety.csv", ["id", "prompt", "response", "label"],
                            [[f"x{i}", f"How do I {t}?", "Hurt them <b>badly</b>." if i % 2 else _good(t), i % 2]
                             for i, t in enumerate(TOPICS)])
    safety_examples = load(safety_csv).examples
    results = [evaluate(ScoreJudge(progress=False).fit(score_examples), score_examples, name="score-tfidf",
                        where="scores.csv", n_boot=100),
               evaluate(SafetyJudge(progress=False).fit(safety_examples), safety_examples, name="safety-tfidf",
                        where="safety.csv", n_boot=100),
               evaluate(pair, pairs, name="pair-tfidf", where="pairs.csv", n_boot=100)]
    return write_report(tmp_path / "report", results)


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
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(widths) >= 9 and all(w > 0 for w in widths), widths
    assert [h.split()[0] for h in headings] == ["Score", "Safety", "Pair"]
    # Offline: the page asks for nothing but itself (images are data: URIs).
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
    saved = json.loads((report.parent / "metrics.json").read_text())
    assert [r["task"] for r in saved] == ["score", "safety", "pair"]
