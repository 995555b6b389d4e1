"""encoders/lm.py on a tiny random Llama (2 layers, hidden 16, built from a config): the batched,
prefix-cached, left-padded forward pass must give what one plain forward pass over each whole prompt
gives; verdicts read both ways round average to an exactly swap-symmetric result; the disk cache makes
a second run (or a resumed one) read nothing; templates fail with the file and the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from align_fixtures import HELPFUL, HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER, tiny_policy

from referee.encoders.lm import (LAST_K, CausalLM, Template, TemplateError, expected_value, normalise,
                                 swap_average)
from referee.schema import Conversation, PairExample


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def lm(model_dir):
    return CausalLM(str(model_dir), batch_size=3, dtype="float32", progress=False)


def pairs(n: int = 4) -> list[PairExample]:
    """Pairs of different lengths, so that a batch pads."""
    return [PairExample(id=str(i), a=Conversation.from_text(HELPFUL[i], (HELPFUL_ANSWER + " ") * (i + 1)),
                        b=Conversation.from_text(HELPFUL[i], UNHELPFUL_ANSWER if i % 2 else REFUSAL))
            for i in range(n)]


def plain_logprobs(lm: CausalLM, text_ids: list[int]) -> torch.Tensor:
    """(len, vocab) log-probs of one unpadded, uncached forward pass over the whole prompt."""
    net, _ = lm._load()
    with torch.no_grad():
        return torch.log_softmax(net(input_ids=torch.tensor([text_ids])).logits[0].float(), -1)


def whole_prompt(lm: CausalLM, template: Template, **fields) -> list[int]:
    """The prompt's tokens as `CausalLM` feeds them: the shared prefix, then the rest."""
    prefix, (suffix,) = lm._split(template, [template.fill(**fields)],
                                  template.fill(**{k: "\x00FIELD\x00" for k in template.FIELDS[template.kind]}))
    return lm._prefix_ids(template, prefix) + lm._tokens(suffix)


def test_batched_prefix_cached_verdicts_equal_one_plain_forward_per_prompt(lm):
    template = Template.load("pair")
    got = lm.pair_verdicts(pairs(), template)  # batches of 3 prompts of different lengths, left-padded
    ids = [lm._tokens(s[0]) for s in template.verdicts.values()]
    for i, ex in enumerate(pairs()):
        for order, (x, y) in enumerate([(ex.a, ex.b), (ex.b, ex.a)]):
            prompt = whole_prompt(lm, template, instruction=ex.a.prompt, response_1=x.response, response_2=y.response)
            last = plain_logprobs(lm, prompt)[-1]
            assert all(len(v) == 1 for v in ids)  # "A", "B", "C": one token each
            np.testing.assert_allclose(got[i, order], [float(last[v[0]]) for v in ids], atol=2e-5)


def test_multi_token_verdicts_sum_their_token_logprobs(lm):
    """autoj's verdicts (" Response 1", " Response 2", " Tie") are several tokens: log p = the sum of
    each token's log-prob given the prompt and the tokens before it."""
    template = Template.load("autoj")
    ex = pairs(1)[0]
    got = lm.pair_verdicts([ex], template)[0, 0]
    prompt = whole_prompt(lm, template, instruction=ex.a.prompt, response_1=ex.a.response, response_2=ex.b.response)
    for k, label in enumerate(template.labels):
        verdict = lm._tokens(template.verdicts[label][0])
        logp = plain_logprobs(lm, prompt + verdict)
        want = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(verdict))
        assert len(verdict) > 1 or label == "tie"
        assert got[k] == pytest.approx(want, abs=2e-5)


def test_swap_average_is_exactly_symmetric(lm):
    examples = pairs()
    swapped = [PairExample(id=ex.id, a=ex.b, b=ex.a) for ex in examples]
    forward = swap_average(lm.pair_verdicts(examples))
    backward = swap_average(lm.pair_verdicts(swapped))
    assert np.array_equal(forward[:, [1, 0, 2]], backward)  # bit for bit, not approximately


def test_cache_makes_a_second_run_read_nothing_and_resumes_an_interrupted_one(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REFEREE_CACHE", str(tmp_path))  # an empty cache
    first = CausalLM(str(model_dir), batch_size=2, dtype="float32", progress=False)
    half = first.pair_verdicts(pairs()[:2])  # "interrupted" after two pairs
    assert first.texts_computed == 4
    again = CausalLM(str(model_dir), batch_size=2, dtype="float32", progress=False)
    whole = again.pair_verdicts(pairs())
    assert again.texts_computed == 4  # only the two pairs not read before, both orders
    assert np.array_equal(whole[:2], half)
    third = CausalLM(str(model_dir), batch_size=2, dtype="float32", progress=False)
    assert np.array_equal(third.pair_verdicts(pairs()), whole) and third.texts_computed == 0
    other = CausalLM(str(model_dir), batch_size=2, dtype="float32", progress=False, max_tokens=64)
    other.pair_verdicts(pairs()[:1])
    assert other.texts_computed == 2  # another token cap is another cache


def test_point_verdicts_give_an_expected_score_and_p_unsafe(lm):
    conversations = [ex.a for ex in pairs(3)]
    scores = lm.point_verdicts(conversations, "score", metric="helpfulness")
    assert scores.shape == (3, 5) and np.all(scores < 0)
    expected = expected_value(scores, Template.load("score").labels)
    assert np.all((expected > 1) & (expected < 5))
    safety = lm.point_verdicts(conversations, "safety", metric="violence")
    assert Template.load("safety").labels == [0, 1] and safety.shape == (3, 2)
    np.testing.assert_allclose(normalise(safety).sum(1), 1)


def test_response_features_are_the_response_token_logprobs_given_the_context(lm):
    conv = Conversation.from_text(HELPFUL[0], HELPFUL_ANSWER)
    got = lm.response_features([conv, Conversation.from_text(HELPFUL[1], "No.")])
    assert got.shape == (2, 4 + 16)
    _, tokenizer = lm._load()
    context = tokenizer.apply_chat_template([{"role": "user", "content": HELPFUL[0]}], tokenize=False,
                                            add_generation_prompt=True)
    c, r = lm._tokens(context), lm._tokens(HELPFUL_ANSWER)
    logp = plain_logprobs(lm, c + r)
    token_lp = np.array([float(logp[len(c) - 1 + j, t]) for j, t in enumerate(r)])
    np.testing.assert_allclose(got[0, :4], [token_lp.mean(), token_lp.min(), token_lp[-LAST_K:].mean(),
                                            np.log1p(len(r))], atol=2e-5)


def test_max_tokens_cuts_long_responses(model_dir):
    lm = CausalLM(str(model_dir), dtype="float32", progress=False, max_tokens=32)
    long = PairExample(id="long", a=Conversation.from_text(HELPFUL[0], HELPFUL_ANSWER * 40),
                       b=Conversation.from_text(HELPFUL[0], REFUSAL * 40))
    template = Template.load("pair")
    clipped = lm._clip(HELPFUL_ANSWER * 40, 12)
    _, tokenizer = lm._load()
    assert clipped == tokenizer.decode(lm._tokens(HELPFUL_ANSWER * 40)[:12]) + " …"
    assert lm._clip(HELPFUL_ANSWER, 100) == HELPFUL_ANSWER
    assert np.isfinite(lm.pair_verdicts([long], template)).all()


@pytest.mark.parametrize("text, message", [
    ("kind: pair\nprompt: '{instruction}'\n", "missing field 'verdicts'"),
    ("kind: triple\nprompt: x\nverdicts: {A: [A]}\n", "field 'kind'"),
    ("kind: pair\nprompt: '{instruction} {response_1}'\nverdicts: {A: [A], B: [B], tie: [C]}\n", "no {response_2}"),
    ("kind: pair\nprompt: '{instruction} {response_1} {response_2}'\nverdicts: {A: [A], B: [B]}\n", "names A, B and tie"),
    ("kind: point\nprompt: '{instruction} {response} {rubric}'\nverdicts: {good: [Yes]}\n", "are numbers"),
    ("kind: pair\nprompt: x\nverdicts: {}\nextra: 1\n", "unknown field"),
    ("kind: pair\nprompt: '{instruction} {response_1} {response_2}'\nverdicts: {A: [A], B: [B], tie: [C]}\n"
     "rubrics: {toxicity: Is it toxic}\n", r"field 'rubrics': expected \(in a point template\)"),
])
def test_bad_templates_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message) as err:
        Template.load(path)
    assert str(path) in str(err.value)


def test_rubrics_per_metric_and_the_default(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("kind: point\nprompt: '{instruction} {response} {rubric}'\nverdicts: {0: ['No'], 1: ['Yes']}\n"
                    "rubric: 'Is it {metric}?'\nrubrics: {violence: 'Does it help hurt {metric} victims?'}\n")
    template = Template.load(path)
    assert template.rubric_for("violence") == "Does it help hurt violence victims?"
    assert template.rubric_for("fraud") == "Is it fraud?"  # not listed: the default


def test_unknown_template_and_colliding_verdicts(tmp_path, lm):
    with pytest.raises(TemplateError, match="not a built-in template"):
        Template.load("nonesuch")
    path = tmp_path / "same.yaml"
    path.write_text("kind: pair\nprompt: '{instruction} {response_1} {response_2}'\nverdicts: {A: [A], B: [A], tie: [C]}\n")
    with pytest.raises(TemplateError, match="same token"):
        lm.pair_verdicts(pairs(1), Template.load(path))


def test_every_builtin_template_loads():
    from referee.encoders.lm import builtin_templates
    names = builtin_templates()
    assert {"pair", "pandalm", "autoj", "score", "safety", "prometheus"} <= set(names)
    for name in names:
        assert Template.load(name).kind in ("pair", "point")


def test_the_kv_cache_goes_by_the_name_the_installed_transformers_takes():
    """transformers 5.17 takes `past_key_values` and silently ignores `cache`; later 5.x take `cache`."""
    from referee.encoders.lm import _cache_kwarg

    class Old:
        def forward(self, input_ids, past_key_values=None, **kwargs): ...

    class New:
        def forward(self, input_ids, cache=None, **kwargs): ...

    assert _cache_kwarg(Old.forward) == "past_key_values"
    assert _cache_kwarg(New.forward) == "cache"


def test_the_default_dtype_is_one_the_device_computes_in(monkeypatch):
    """bfloat16 on a GPU and on a CPU with AMX tiles; float32 on any other CPU, where bfloat16 costs
    several times the CPU time. The resolved dtype is what the cache key and a saved judge record."""
    from referee.encoders.lm import default_dtype

    assert default_dtype("cuda") == "bfloat16" and default_dtype("cuda:1") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert default_dtype("cpu") == "float32" and default_dtype("mps") == "float32"
    assert CausalLM("smollm2", device="cpu").dtype == "float32"
    assert CausalLM("smollm2", device="cpu", dtype="bfloat16").dtype == "bfloat16"  # asked for: kept
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert default_dtype("cpu") == "bfloat16"
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert default_dtype("cpu") == "float32"
