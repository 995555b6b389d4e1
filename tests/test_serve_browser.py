"""The web page in a real browser: Playwright driving Debian's chromium against a real uvicorn server
on 127.0.0.1 (a free port), serving real tiny TF-IDF judges."""

from __future__ import annotations

import os

import httpx
import pytest
from judges_fixtures import pair_examples, safety_examples, score_examples

from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge
from referee.schema import SafetyExample
from referee.serve import create_app, running

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
KEY = "browser-test-key-0123456789"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make browser)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def judges():
    return {"pair": PairJudge(progress=False).fit(pair_examples()),
            "safety": SafetyJudge(progress=False).fit(safety_examples()),
            "score": ScoreJudge(progress=False).fit(score_examples()),
            "reward": RewardJudge(progress=False).fit(pair_examples(ties=False))}


def test_fill_click_read(browser, judges, tmp_path):
    with running(create_app(judges, max_chars=500)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        # The Content-Security-Policy reports what it blocks on the console (an inline style, a script).
        page.on("console", lambda msg: "Content Security Policy" in msg.text and errors.append(msg.text))
        page.goto(url)
        page.wait_for_selector(".chip")
        assert page.inner_text("#status") == "4 judges loaded"
        page.fill("#system", "Be kind.")
        page.fill("#user", "question 1 about topic 1")
        page.fill("#response-a", "wrong rude vague")
        page.fill("#response-b", "clear correct helpful polite thorough")
        page.click("#judge-button")
        page.locator(".card-foot").nth(3).wait_for()  # four cards; not wait_for_function: the CSP forbids eval

        # The page shows what the API answers for the same conversation.
        context = {"system": "Be kind.", "turns": [{"role": "user", "content": "question 1 about topic 1"}]}
        api = httpx.post(url + "/v1/compare", json={"context": context, "response_a": "wrong rude vague",
                                                     "response_b": "clear correct helpful polite thorough"}).json()
        words = {"A": "A is better", "B": "B is better", "tie": "A tie"}[api["verdict"]]
        assert page.inner_text("[data-testid=pair-verdict] .verdict-word") == words
        assert api["verdict"] == "B"
        safety = page.locator("[data-testid=safety-verdict] .verdict-word").all_inner_texts()
        assert len(safety) == 2 and set(safety) <= {"Safe", "Unsafe"}  # one per response
        cards = page.locator(".card").all_inner_texts()
        assert any("helpfulness" in c and "politeness" in c for c in cards)  # per-metric scores
        assert any("A preferred" in c for c in cards)  # reward
        widths = page.eval_on_selector_all(".fill", "nodes => nodes.map(n => n.style.width)")
        assert widths and all(w.endswith("%") for w in widths)  # the bars' widths got through the CSP
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        # Errors are shown in the page, in words: a text over the limit, a pair judge without B.
        page.fill("#response-a", "x" * 600)
        page.fill("#response-b", "")
        page.keyboard.press("Control+Enter")  # keyboard-friendly: no mouse needed
        page.wait_for_selector(".card.failed")
        failed = page.inner_text(".card.failed .error")
        assert "has 600 characters; the limit is 500" in failed
        assert "needs response B" in page.inner_text(".card.skipped")
        page.fill("#user", "")
        page.click("#judge-button")
        assert "Write the user's request first" in page.inner_text("#banner")
        assert errors == []
        page.close()


def test_docs_page_renders_offline(browser, judges):
    """/docs draws Swagger UI from this server's own assets under its CSP (no CDN can be reached here)."""
    with running(create_app({"safety": judges["safety"]})) as url:
        page = browser.new_page()
        errors = []
        page.on("console", lambda msg: "Content Security Policy" in msg.text and errors.append(msg.text))
        page.goto(url + "/docs")
        page.wait_for_selector(".opblock-summary-path")
        assert "/v1/safety" in page.inner_text("#swagger-ui") and errors == []
        page.close()


def test_api_key_prompt(browser, judges):
    with running(create_app({"safety": judges["safety"]}, api_keys=[KEY])) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#key-form:not([hidden])")
        assert page.inner_text("#status") == "API key needed"
        page.fill("#api-key", "not-the-key-at-all-000")
        page.press("#api-key", "Enter")
        page.wait_for_selector("#banner:not([hidden])")
        assert "refused" in page.inner_text("#banner")
        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")
        page.wait_for_selector(".chip")
        page.click("#example-button")
        page.click("#judge-button")
        page.wait_for_selector(".card-foot")
        assert page.locator("[data-testid=safety-verdict]").count() == 2
        page.close()


def test_category_codes_are_spelt_out(browser):
    """OpenAI moderation codes (H2, HR) read as words on the page and in /v1/judges; other names stay."""
    rename = {"harsh": "HR", "hate": "H2"}
    examples = [SafetyExample(id=e.id, conversation=e.conversation, labels={rename[k]: v for k, v in e.labels.items()})
                for e in safety_examples()]
    judge = SafetyJudge(progress=False).fit(examples)
    with running(create_app({"moderation": judge})) as url:
        info = httpx.get(url + "/v1/judges").json()["judges"][0]
        assert info["category_names"] == {"HR": "harassment (HR)", "H2": "hate/threatening (H2)"}
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector(".chip")
        page.fill("#user", "question 1 about topic 1")
        page.fill("#response-a", "wrong rude vague")
        page.click("#judge-button")
        page.wait_for_selector(".cats")
        text = page.inner_text(".cats")
        assert "harassment (HR)" in text and "hate/threatening (H2)" in text
