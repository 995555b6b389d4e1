"""The README's screenshot of the web page: real judges (bench/serve_judges.py), a real server on
loopback, Debian chromium through Playwright.

    .venv/bin/python bench/serve_screenshot.py JUDGES_DIR [--only NAME...] [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from referee.serve import create_app, load_judges, running

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judges", type=Path, help="a folder of judge folders")
    parser.add_argument("--only", nargs="+", help="judge folder names to show (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    args = parser.parse_args()
    folders = sorted(p for p in args.judges.iterdir() if (p / "judge.json").is_file() and p.name in (args.only or [p.name]))
    judges = load_judges(folders)
    with running(create_app(judges)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector(".chip")
        page.click("#example-button")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("document.querySelectorAll('.card-foot').length >= %d" % len(judges))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
