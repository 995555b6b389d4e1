"""The report's README picture: TF-IDF judges on held-out rows of three real sets (Arena pairs, OpenAI
moderation, RTP-LX Hindi scores; 70/30 split grouped by prompt), each beside its trivial baselines,
written to OUT/index.html and shot in headless chromium (OUT/report.png, the first 1280 x 900 pixels).
Also checks that every table fits the page. About 3 minutes on 2 busy cores.

    .venv/bin/python bench/report_example.py /tmp/report && cp /tmp/report/report.png docs/report.png
"""

import sys
from pathlib import Path

from referee.data import load
from referee.data.split import train_valid_split
from referee.evaluate.baselines import baselines
from referee.evaluate.evaluators import evaluate
from referee.evaluate.report import write_report
from referee.judges import PairJudge, SafetyJudge, ScoreJudge

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SETS = [("arena held-out", DATA / "arena/train.csv", PairJudge, "pair judge, TF-IDF"),
        ("moderation held-out", DATA / "openai_moderation/samples.dev.jsonl.gz", SafetyJudge, "safety TF-IDF"),
        ("rtp-lx held-out", DATA / "rtp_lx/RTP_LX_HI.dev.jsonl", ScoreJudge, "score TF-IDF")]


def main(out: Path) -> None:
    results = []
    for where, path, cls, name in SETS:
        train, test = train_valid_split(load(path).examples, valid_fraction=0.3, seed=0)
        results.append(evaluate(cls(progress=False).fit(train), test, name=name, where=where, n_boot=200))
        results += [evaluate(b, test, name=b.name, where=where, n_boot=200) for b in baselines(cls.task, test, train)]
    page = write_report(out, results, title="referee eval: TF-IDF judges on held-out Arena, OpenAI moderation "
                                            "and RTP-LX rows")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(page.as_uri())
        tab.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        overflow = tab.evaluate("Math.max(...Array.from(document.querySelectorAll('.scroll'))"
                                ".map(e => e.scrollWidth - e.clientWidth))")
        tab.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
        tab.screenshot(path=str(out / "report.png"))
        browser.close()
    print(f"{page}; widest table overflows the page by {overflow} px (0 = every table fits)")
    for r in results:
        print(f"{r.data:<22} {r.judge:<24} {r.primary} {r.metrics[r.primary]:.3f} "
              f"[{r.ci[r.primary][0]:.3f}, {r.ci[r.primary][1]:.3f}]" if r.primary in r.ci else "")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "report-example"))
