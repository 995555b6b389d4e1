"""The loaders on the real data in ../shared/data (skipped when it is absent): exact counts and labels."""

from collections import Counter

import pytest

from referee.data import load
from referee.data.pandalm import load_judge_predictions
from referee.data.split import group_key, train_valid_split

pytestmark = pytest.mark.shared


def test_arena(shared_data):
    res = load(shared_data / "arena" / "train.csv")
    assert (res.format, res.task, len(res), res.skipped) == ("arena", "pair", 800, [])
    assert sum(len(e.a.turns) > 2 for e in res.examples) == 92  # multi-turn battles
    assert res.notes == ["4 null turn(s) read as empty text"]
    test = load(shared_data / "arena" / "test.csv")
    assert len(test) == 3 and all(e.label is None for e in test.examples)


def test_hh_rlhf_harmless(shared_data):
    res = load(shared_data / "hh_rlhf_harmless" / "train.jsonl.gz")
    assert (res.format, len(res)) == ("hh_rlhf", 1800)
    assert Counter(e.label for e in res.examples) == {"A": 1800}
    assert sum(e.a.context == e.b.context for e in res.examples) == 1798


def test_pandalm_and_its_judges(shared_data):
    res = load(shared_data / "pandalm" / "testset-v1.dev.json")
    assert (res.format, len(res)) == ("pandalm", 694)
    assert sum(e.soft in ((1, 0, 0), (0, 1, 0), (0, 0, 1)) for e in res.examples) == 619  # unanimous
    ids = {e.id for e in res.examples}
    for name in ("gpt-3.5-turbo-testset-v1.dev.json", "pandalm-7b-testset-v1.dev.json"):
        predictions = load_judge_predictions(shared_data / "pandalm" / name)
        assert set(predictions) == ids
    assert Counter(load_judge_predictions(shared_data / "pandalm" / "gpt-3.5-turbo-testset-v1.dev.json").values())[None] == 18


def test_autoj(shared_data):
    res = load(shared_data / "autoj" / "pairwise.dev.jsonl")
    assert (res.format, len(res)) == ("autoj", 1000)
    assert Counter(e.label for e in res.examples) == {"A": 368, "B": 352, "tie": 280}


def test_xstest(shared_data):
    prompts = load(shared_data / "xstest" / "xstest_prompts.csv")
    assert Counter(e.label for e in prompts.examples) == {"safe": 169, "unsafe": 131}
    for model in ("gpt4", "llama2new", "mistralinstruct"):
        for suffix in ("", "_gpteval", "_streval"):
            res = load(shared_data / "xstest" / f"xstest_v2_completions_{model}{suffix}.csv")
            assert (res.format, len(res), res.notes) == ("xstest_completions", 300, [])
            assert sum(e.labels["unsafe_prompt"] for e in res.examples) == 131
    gpt4 = load(shared_data / "xstest" / "xstest_v2_completions_gpt4.csv").examples
    assert sum(e.labels["refusal"] for e in gpt4) == 141 and sum(e.labels["partial_refusal"] for e in gpt4) == 6


def test_openai_moderation(shared_data):
    res = load(shared_data / "openai_moderation" / "samples.dev.jsonl.gz")
    assert (res.format, len(res)) == ("openai_moderation", 1200)
    assert sum(e.labels["H"] is None for e in res.examples) == 659  # rows without an "H" key (zgrep -vc)


def test_rtp_lx(shared_data):
    res = load(shared_data / "rtp_lx" / "RTP_LX_HI.dev.jsonl")
    assert (res.format, len(res)) == ("rtp_lx", 800 * 8)
    assert Counter(e.metric for e in res.examples) == {m: 800 for m in (
        "Toxicity", "IdentityAttack", "Bias", "Microaggression", "Violence", "SelfHarm", "Insult", "SexualContent")}
    train, valid = train_valid_split(res.examples)
    assert not {group_key(e) for e in train} & {group_key(e) for e in valid}


def test_simple_safety_tests_and_xsafety(shared_data):
    res = load(shared_data / "simple_safety_tests" / "SimpleSafetyTests - test cases.csv")
    assert (res.format, len(res)) == ("simple_safety_tests", 100) and len({e.category for e in res.examples}) == 5
    res = load(shared_data / "xsafety")
    assert (res.format, len(res)) == ("xsafety", 43 * 200)
    assert Counter(e.language for e in res.examples) == {"en": 2800, "hi": 3000, "bn": 2800}
    assert len({e.category for e in res.examples}) == 14
