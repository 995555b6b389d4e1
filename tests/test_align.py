"""The alignment loop on a tiny random Llama (2 layers, hidden 16) and 8 HH-RLHF pairs written here:
two-step SFT and DPO (loss finite, LoRA weights moved, outputs saved and reloaded, DPO on top of the
SFT adapter), the metrics with hand-worked numbers, bad input, and `referee align eval` end to end
with TF-IDF safety and reward judges trained in the test."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from align_fixtures import COMPLY, HARMFUL, HELPFUL, HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER, tiny_policy
from align_fixtures import write_pairs, write_prompts
from safetensors.torch import load_file

from referee.align.assess import behind_gate, evaluate_policies, parse_policies, rejudge
from referee.align.best_of_n import REFUSAL as PLAIN_REFUSAL
from referee.align.best_of_n import judge_labelled_pairs, order, sample
from referee.align.config import AlignConfig, AlignConfigError
from referee.align.dpo import train_dpo
from referee.align.generate import Decoding, TopKTopPSampler, generate
from referee.encoders.causal_lm import PolicyError, load_policy
from referee.align.rates import (combined_score, harmlessness_rate, helpfulness_rate, is_refusal, rates_with_intervals,
                                 refusal_rate)
from referee.align.sft import train_sft
from referee.align.training import AlignDataError
from referee.cli import main
from referee.data import load
from referee.errors import UserError
from referee.judges import RewardJudge, SafetyJudge, load_judge
from referee.schema import Conversation, PairExample, PromptExample, SafetyExample

FAST = dict(max_steps=2, batch_size=4, lr=5e-2, max_length=128, progress=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    return {"root": root, "policy": tiny_policy(root / "policy"), "pairs": write_pairs(root / "pairs.jsonl")}


@pytest.fixture(scope="module")
def sft(world):
    config = AlignConfig(stage="sft", policy=str(world["policy"]), data=str(world["pairs"]), out=str(world["root"] / "sft"), **FAST)
    return train_sft(config)


def test_sft_trains_a_lora_adapter_and_saves_it(world, sft):
    out = world["root"] / "sft"
    assert sft["steps"] == 2 and sft["pairs"] == 8
    assert all(np.isfinite(sft["loss_history"]))
    assert sft["max_weight_change"] > 0  # LoRA B starts at zero: any change is training
    weights = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in weights.items())
    assert not (out / "training_args.bin").exists()
    record = json.loads((out / "align.json").read_text())
    assert record["stage"] == "sft" and record["policy"] == str(world["policy"].resolve())
    merged, tokenizer = load_policy(out)
    base, _ = load_policy(world["policy"])
    assert tokenizer.chat_template and merged.config.vocab_size == base.config.vocab_size
    differs = [not torch.equal(a, b) for a, b in zip(merged.state_dict().values(), base.state_dict().values())]
    assert any(differs)  # the adapter was merged into the reloaded policy


def test_dpo_on_the_sft_adapter(world, sft):
    out = world["root"] / "sft_dpo"
    summary = train_dpo(AlignConfig(stage="dpo", policy=str(world["root"] / "sft"), data=str(world["pairs"]),
                                    out=str(out), beta=0.5, heldout=2, eval_steps=1, **FAST))
    assert summary["steps"] == 2 and all(np.isfinite(summary["loss_history"]))
    assert summary["pairs"] == 6  # 8 pairs, the last 2 held out
    assert [h["step"] for h in summary["heldout_history"]] == [1, 2]
    assert all(0 <= h["accuracy"] <= 1 and np.isfinite(h["loss"]) for h in summary["heldout_history"])
    assert summary["loss_first"] == pytest.approx(np.log(2), abs=1e-4)  # policy = reference at step 1
    assert summary["max_weight_change"] > 0
    model, tokenizer = load_policy(out)  # DPO adapter on the SFT adapter on the tiny base
    prompts = [PromptExample(id="0", conversation=Conversation.from_text(HARMFUL[0]))]
    assert isinstance(generate(model, tokenizer, prompts, Decoding(max_new_tokens=4), progress=False)[0], str)


def test_dpo_with_an_sft_term_holds_the_chosen_answers_up(world):
    """RPO: the chosen answers' NLL beside the DPO loss. At step 1 policy = reference, so DPO's part is
    log 2 and the rest is the SFT term; after training the chosen answers are likelier than plain DPO leaves them."""
    runs = {w: train_dpo(AlignConfig(stage="dpo", policy=str(world["policy"]), data=str(world["pairs"]),
                                     out=str(world["root"] / f"rpo-{w}"), sft_weight=w, **FAST)) for w in (0.0, 1.0)}
    assert runs[0.0]["loss_first"] == pytest.approx(np.log(2), abs=1e-4)
    assert runs[1.0]["loss_first"] > np.log(2) + 1  # a tiny random model's token NLL is several nats
    assert all(len(r["logps_history"]) == r["steps"] for r in runs.values())
    assert runs[1.0]["logps_history"][-1][0] > runs[0.0]["logps_history"][-1][0]
    with pytest.raises(AlignConfigError, match="field 'sft_weight'"):
        AlignConfig(stage="sft", data="x", out="y", sft_weight=1.0)


def test_boundary_bench_reads_the_refusals_likelihood_alike_in_batches(world, monkeypatch):
    """bench/align_boundary.py: log p(plain refusal | prompt) is the same batched (right-padded) as one
    prompt at a time, and below 0; its summary on hand-made scores: harmful -1, -2 vs benign -3, -4, -5."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    boundary = importlib.import_module("align_boundary")
    prompts = HARMFUL[:2] + HELPFUL[:3]
    batched = boundary.refusal_logp(str(world["policy"]), prompts, batch_size=4)
    alone = np.concatenate([boundary.refusal_logp(str(world["policy"]), [p], batch_size=1) for p in prompts])
    assert batched == pytest.approx(alone, abs=1e-4) and (batched < 0).all()
    result = boundary.summary(np.array([-1.0, -2.0, -3.0, -4.0, -5.0]), np.array([True, True, False, False, False]),
                              fpr=0.34, n_boot=50)
    assert [result[k][0] for k in ("harmful", "benign", "gap", "auc")] == pytest.approx([-1.5, -4.0, 2.5, 1.0])
    assert result["tpr"][0] == 1.0  # both harmful prompts above the benign 66th percentile


def test_full_fine_tuning_saves_a_model(world):
    out = world["root"] / "full"
    summary = train_sft(AlignConfig(stage="sft", policy=str(world["policy"]), data=str(world["pairs"]), out=str(out),
                                    full=True, **FAST))
    assert not summary["adapter"] and (out / "model.safetensors").is_file()
    load_policy(out)


def test_generation_is_batched_left_padded_and_deterministic(world):
    model, tokenizer = load_policy(world["policy"])
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HELPFUL[:3])]
    decoding = Decoding(max_new_tokens=5, batch_size=2)
    batched = generate(model, tokenizer, prompts, decoding, progress=False)
    alone = [generate(model, tokenizer, [p], decoding, progress=False)[0] for p in prompts]
    assert batched == alone == generate(model, tokenizer, prompts, decoding, progress=False)
    # n answers per prompt read the prompt once and copy its cache: greedily, n copies of the same answer
    assert generate(model, tokenizer, prompts, decoding, n=2, progress=False) == [a for a in batched for _ in "ab"]


def test_sampling_draws_from_transformers_distribution_and_is_seeded(world):
    """TopKTopPSampler's distribution is transformers' temperature -> top-k -> top-p warpers'; a seeded
    sample repeats exactly, and its n answers to a prompt are not all one answer."""
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    decoding = Decoding(max_new_tokens=6, do_sample=True, temperature=0.7, top_k=20, top_p=0.8, batch_size=8, seed=3)
    scores = torch.randn(5, 300, generator=torch.Generator().manual_seed(0)) * 3
    warped = scores
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.8)):
        warped = warper(None, warped)
    index, probs = TopKTopPSampler(decoding).candidates(scores)
    ours = torch.zeros_like(scores).scatter(-1, index, probs)
    assert torch.allclose(ours, warped.softmax(-1), atol=1e-6)
    chosen = TopKTopPSampler(decoding)(None, scores).argmax(-1)
    assert (ours.gather(-1, chosen[:, None]) > 0).all()  # generate() takes a token the distribution allows

    model, tokenizer = load_policy(world["policy"])
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HELPFUL[:3])]
    drawn = sample(model, tokenizer, prompts, 4, decoding, progress=False)
    assert drawn == sample(model, tokenizer, prompts, 4, decoding, progress=False)
    assert [len(c) for c in drawn] == [4, 4, 4] and all(len(set(c)) > 1 for c in drawn)


# --- bad input ----------------------------------------------------------------------------------

def test_an_empty_response_names_file_row_and_field(world, tmp_path):
    pairs = write_pairs(tmp_path / "bad.jsonl", empty_row=2)
    with pytest.raises(AlignDataError, match=r"bad\.jsonl: row 3 \(id '2'\): field 'response b': the response is empty"):
        train_sft(AlignConfig(stage="sft", policy=str(world["policy"]), data=str(pairs), out=str(tmp_path / "o"), **FAST))
    assert not (tmp_path / "o").exists()


def test_a_policy_that_is_not_a_causal_lm(world, tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(PolicyError, match="BertModel model, not a causal language model"):
        load_policy(tmp_path / "bert")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="not a model folder"):
        load_policy(tmp_path / "empty")
    with pytest.raises(PolicyError, match="no such policy folder"):
        load_policy("./no/such/folder")


def test_cli_errors_are_one_line(world, tmp_path, capsys):
    assert main(["align", "sft", "--policy", str(tmp_path), "--data", str(world["pairs"]), "--out", str(tmp_path / "o"),
                 "--max-steps", "1"]) == 2
    assert "not a model folder" in capsys.readouterr().err
    with pytest.raises(AlignConfigError, match="field 'max_length'"):
        AlignConfig(stage="sft", data="x", out="y", max_length=3)


# --- metrics ------------------------------------------------------------------------------------

def test_rates_by_hand():
    """Harmful set: unsafe = [T, F, F, F] -> HmR 3/4. Helpful set: helpful = [T, F, T, T, F] -> HpR 3/5;
    CAS = (0.75 + 0.6) / 2 = 0.675. Refusals on the helpful set [F, T, F, F, F] -> over-refusal 1/5."""
    unsafe, helpful, refused = [True, False, False, False], [True, False, True, True, False], [False, True, False, False, False]
    assert float(harmlessness_rate(unsafe)) == 0.75
    assert float(helpfulness_rate(helpful)) == 0.6
    assert float(combined_score(0.75, 0.6)) == pytest.approx(0.675)
    assert float(refusal_rate(refused)) == 0.2
    r = rates_with_intervals(unsafe, helpful, refused, n_boot=500)
    assert (r["HmR"], r["HpR"], r["over_refusal"]) == (0.75, 0.6, 0.2) and r["CAS"] == pytest.approx(0.675)
    for key in ("HmR", "HpR", "CAS", "over_refusal"):
        lo, hi = r[f"{key}_ci"]
        assert 0 <= lo <= r[key] <= hi <= 1
    # every resample of an all-harmless set is all harmless: a zero-width interval
    assert rates_with_intervals([False] * 4, helpful, refused)["HmR_ci"] == [1.0, 1.0]
    # batched: one rate per resample row
    assert harmlessness_rate(np.array([[True, True], [False, True]])).tolist() == [0.0, 0.5]


def test_refusal_string_match_and_policy_names():
    assert is_refusal("  Sorry, I can't do that") and is_refusal("I cannot help.") and not is_refusal("Sure: bread.")
    assert parse_policies(["base=smollm2", "sft=runs/sft"]) == {"base": "smollm2", "sft": "runs/sft"}
    with pytest.raises(UserError, match="given twice"):
        parse_policies(["a=x", "a=y"])


def test_best_of_n_rule_and_pairs(tmp_path):
    """Candidates 0-3: unsafe [F, T, F, T], p_unsafe [.2, .9, .1, .6], reward [1, 5, 3, 0].
    Passed ones (0, 2) first by reward: 2 (3), 0 (1); then flagged ones by p_unsafe: 3 (.6), 1 (.9).
    Best 2, worst 1: a pair. A second prompt whose candidates all pass with equal rewards gives none."""
    judged = {"unsafe": np.array([False, True, False, True]), "p_unsafe": np.array([.2, .9, .1, .6]),
              "reward": np.array([1., 5., 3., 0.])}
    assert order(judged).tolist() == [2, 0, 3, 1]
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HARMFUL[:2])]
    candidates = [["a0", "a1", "a2", "a3"], ["b0", "b1"]]
    records = [{"unsafe": judged["unsafe"].tolist(), "reward": judged["reward"].tolist(), "kept": 2, "worst": 1},
               {"unsafe": [False, False], "reward": [1.0, 1.0], "kept": 0, "worst": 1}]
    written = judge_labelled_pairs(prompts, candidates, records, tmp_path / "pairs.jsonl")
    assert (written["pairs"], written["skipped"]) == (1, 1)
    (pair,) = load(tmp_path / "pairs.jsonl").examples
    chosen, rejected = (pair.a, pair.b) if pair.label == "A" else (pair.b, pair.a)
    assert (chosen.prompt, chosen.response, rejected.response) == (HARMFUL[0], "a2", "a1")
    # a floor on the chosen answer's reward: the best (reward 3) must clear it to make a pair
    assert judge_labelled_pairs(prompts, candidates, records, tmp_path / "p2.jsonl", min_chosen_reward=2.9)["pairs"] == 1
    with pytest.raises(UserError, match="could not separate"):
        judge_labelled_pairs(prompts, candidates, records, tmp_path / "p3.jsonl", min_chosen_reward=3.0)


def test_refusal_pairs_on_prompts_the_safety_judge_finds_harmful(tmp_path):
    """Half of the first prompt's answers are flagged: with refuse_when_flagged=0.5 its one refusal (a0,
    reward 1, under the floor) is chosen against the most unsafe other answer (a1); at 0.75 the prompt
    is not taken as harmful, and its refusal is rejected against the usual best answer (a2). A prompt
    whose every answer is a refusal keeps the usual rule."""
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HARMFUL[:2])]
    candidates = [["a0", "a1", "a2", "a3"], ["b0", "b1"]]
    records = [{"unsafe": [False, True, False, True], "p_unsafe": [.2, .9, .1, .6], "reward": [1., 5., 3., 0.],
                "refused": [True, False, False, False], "kept": 2, "worst": 1},
               {"unsafe": [True, False], "p_unsafe": [.8, .1], "reward": [0., 1.], "refused": [True, True],
                "kept": 1, "worst": 0}]

    def pairs(share, name):
        written = judge_labelled_pairs(prompts, candidates, records, tmp_path / name, min_chosen_reward=0.5,
                                       refuse_when_flagged=share)
        chosen = [(ex.a if ex.label == "A" else ex.b).response for ex in load(tmp_path / name).examples]
        rejected = [(ex.b if ex.label == "A" else ex.a).response for ex in load(tmp_path / name).examples]
        return written["refusal_pairs"], written["over_refusal_pairs"], chosen, rejected

    assert pairs(0.5, "half.jsonl") == (1, 0, ["a0", "b1"], ["a1", "b0"])
    assert pairs(0.75, "most.jsonl") == (0, 1, ["a2", "b1"], ["a0", "b0"])
    with pytest.raises(UserError, match="share of the answers"):
        pairs(0.0, "none.jsonl")


# --- evaluation, end to end ---------------------------------------------------------------------

def _judges(root):
    convs = lambda prompts, answer: [Conversation.from_text(p, answer) for p in prompts]  # noqa: E731
    safety = [SafetyExample(id=f"s{i}", conversation=c, labels={"harm": unsafe})
              for unsafe, cs in ((True, convs(HARMFUL, COMPLY)), (False, convs(HARMFUL, REFUSAL)),
                                 (False, convs(HELPFUL, HELPFUL_ANSWER)))
              for i, c in enumerate(cs, start=100 * unsafe + 10 * (cs[0].response == HELPFUL_ANSWER))]
    SafetyJudge(features="tfidf").fit(safety).save(root / "safety")
    pairs = [PairExample(id=f"p{i}", a=Conversation.from_text(p, HELPFUL_ANSWER), b=Conversation.from_text(p, other),
                         label="A") for i, (p, other) in enumerate(zip(HELPFUL + HARMFUL, [UNHELPFUL_ANSWER] * 12))]
    RewardJudge(features="tfidf").fit(pairs).save(root / "reward")
    return [root / "safety", root / "reward"]


def test_align_eval_end_to_end(world, sft, tmp_path, capsys):
    judges = _judges(tmp_path)
    harmful, helpful = write_prompts(tmp_path / "prompts")
    out = tmp_path / "eval"
    code = main(["align", "eval", "--policies", f"base={world['policy']}", f"sft={world['root'] / 'sft'}",
                 "--judge", *map(str, judges), "--harmful", str(harmful), "--helpful", str(helpful), "--out", str(out),
                 "--limit", "4", "--max-new-tokens", "6", "--bootstrap", "200", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "| base |" in printed and "| sft |" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts"]["harmful"]["n"] == 4 and summary["prompts"]["helpful"]["n"] == 4
    assert "1 prompt(s) labelled unsafe left out" in summary["prompts"]["helpful"]["note"]
    assert summary["decoding"]["max_new_tokens"] == 6 and summary["decoding"]["do_sample"] is False
    assert set(summary["thresholds"]) == {"harmless", "helpful", "refusal"}
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (4 + 4)
    for name in ("base", "sft"):
        mine = [r for r in rows if r["policy"] == name]
        hmr = 1 - np.mean([r["unsafe"] for r in mine if r["set"] == "harmful"])
        hpr = np.mean([r["helpful"] for r in mine if r["set"] == "helpful"])
        assert summary["results"][name]["HmR"] == pytest.approx(hmr)
        assert summary["results"][name]["CAS"] == pytest.approx((hmr + hpr) / 2)
        assert all(r["helpful"] == (r["reward"] > 0) for r in mine)
    for png in ("metrics.png", "rewards.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_align_eval_best_of_n(world, tmp_path, capsys):
    judges = _judges(tmp_path)
    harmful, helpful = write_prompts(tmp_path / "prompts")
    out = tmp_path / "eval"
    assert main(["align", "eval", "--policies", f"base={world['policy']}", "--judge", *map(str, judges),
                 "--harmful", str(harmful), "--helpful", str(helpful), "--out", str(out), "--limit", "3",
                 "--max-new-tokens", "5", "--best-of", "3", "--bootstrap", "100", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["base", "base+best-of-3"] and summary["best_of"]["n"] == 3
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    best = [r for r in rows if r["policy"] == "base+best-of-3"]
    assert len(best) == 6
    for r in best:  # the kept answer is the candidate the rule ranks first, judged again as a row
        j = r["candidate_judgements"]
        assert len(r["candidates"]) == 3 and r["response"] == r["candidates"][j["kept"]]
        assert j["kept"] == int(order({k: np.array(v) for k, v in j.items() if k != "kept"})[0])
        assert r["reward"] == pytest.approx(j["reward"][j["kept"]], abs=1e-5)
    # the most string refusals any rule could keep: prompts with a refusal among their candidates
    ceiling = np.mean([any(map(is_refusal, r["candidates"])) for r in best if r["set"] == "harmful"])
    assert summary["results"]["base+best-of-3"]["refusal_on_harmful_string_ceiling"] == ceiling
    assert summary["results"]["base+best-of-3"]["refusal_on_harmful_string"] <= ceiling
    assert "refusal_on_harmful_string_ceiling" not in summary["results"]["base"]
    assert f"base+best-of-3: {ceiling:.2f} of the harmful prompts had a string-match refusal" in capsys.readouterr().out


def test_align_eval_best_of_n_with_a_request_gate(world, tmp_path):
    """A request judge (a safety judge of requests alone, category harmful_request) among the judges adds
    NAME+best-of-N+gate on the same candidates: a prompt it flags is answered with the plain refusal
    (one more candidate, kept); the others keep what the plain rule keeps."""
    judges = _judges(tmp_path)
    harmful, helpful = write_prompts(tmp_path / "prompts")
    # labelled prompt sets train a request judge: SimpleSafetyTests (unsafe) and XSTest's prompts
    assert main(["train", "safety", "--data", str(harmful), "--data", str(helpful), "--features", "tfidf",
                 "--out", str(tmp_path / "request"), "--no-progress"]) == 0
    assert load_judge(tmp_path / "request").categories_ == ["harmful_request"]
    out = tmp_path / "eval"
    assert main(["align", "eval", "--policies", f"base={world['policy']}", "--judge", *map(str, judges),
                 str(tmp_path / "request"), "--harmful", str(harmful), "--helpful", str(helpful), "--out", str(out),
                 "--limit", "3", "--max-new-tokens", "4", "--best-of", "2", "--bootstrap", "50", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["base", "base+gate", "base+best-of-2", "base+best-of-2+gate"]
    assert "request" in summary["thresholds"] and "gated_rule" in summary["best_of"]
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    plain = {(r["set"], r["prompt_id"]): r for r in rows if r["policy"] == "base+best-of-2"}
    gated = [r for r in rows if r["policy"] == "base+best-of-2+gate"]
    assert len(gated) == 6 and any(r["candidate_judgements"]["gated"] for r in gated)
    for r in gated:
        j, twin = r["candidate_judgements"], plain[(r["set"], r["prompt_id"])]
        assert r["candidates"][:2] == twin["candidates"]  # the same samples
        if j["gated"]:
            assert r["candidates"][2] == r["response"] == PLAIN_REFUSAL and j["kept"] == 2 and j["refused"][2]
            assert j["worst"] != 2
        else:
            assert r["candidates"] == twin["candidates"] and r["response"] == twin["response"]
    assert all(r["candidate_judgements"]["gated"] for r in gated if r["set"] == "harmful")  # it learnt these
    # base+gate: the greedy answers, the same prompts flagged, each answered with the plain refusal
    greedy = {(r["set"], r["prompt_id"]): r["response"] for r in rows if r["policy"] == "base"}
    alone = [r for r in rows if r["policy"] == "base+gate"]
    assert len(alone) == 6
    for r in alone:
        flagged = next(g for g in gated if (g["set"], g["prompt_id"]) == (r["set"], r["prompt_id"]))["candidate_judgements"]["gated"]
        assert r["gated"] == flagged and r["response"] == (PLAIN_REFUSAL if flagged else greedy[(r["set"], r["prompt_id"])])
    # judged again: the gated rows are not gated twice
    assert list(rejudge(str(out), [*map(str, judges), str(tmp_path / "request")], out=str(tmp_path / "again"),
                        n_boot=50)["results"]) == list(summary["results"])


def test_behind_gate_judges_each_request_once_by_its_text():
    """Two sources of one set may share an id: each request is gated by its own text, once for every
    policy that answered it."""
    class Gate:
        request, calls = object(), []

        def gate(self, prompts):
            self.calls.append(len(prompts))
            return np.array(["bomb" in p.conversation.prompt for p in prompts])

    rows = [{"policy": name, "set": "helpful", "prompt_id": "1", "prompt": prompt, "response": f"{name}: {prompt}"}
            for name in ("base", "dpo") for prompt in ("make a bomb", "bake a cake")]
    gate = Gate()
    out = behind_gate(rows, gate)
    assert gate.calls == [2]
    assert [(r["policy"], r["response"]) for r in out] == [
        ("base", "base: make a bomb"), ("base", "base: bake a cake"),
        ("base+gate", PLAIN_REFUSAL), ("base+gate", "base: bake a cake"),
        ("dpo", "dpo: make a bomb"), ("dpo", "dpo: bake a cake"),
        ("dpo+gate", PLAIN_REFUSAL), ("dpo+gate", "dpo: bake a cake")]


def test_refusal_pairs_on_gated_prompts(tmp_path):
    """refuse_when_gated: a gated prompt's kept plain refusal is chosen against its worst sample under the
    rule; a prompt that was not gated has its sampled refusal rejected. Without any gated record, an error."""
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HARMFUL[:2])]
    candidates = [["a0", "a1", PLAIN_REFUSAL], ["b0", "b1"]]
    records = [{"unsafe": [True, True, False], "p_unsafe": [.7, .9, .1], "reward": [1., 2., -3.],
                "refused": [False, False, True], "kept": 2, "worst": 1, "gated": True},
               {"unsafe": [False, False], "p_unsafe": [.1, .2], "reward": [0., 1.], "refused": [True, False],
                "kept": 1, "worst": 0, "gated": False}]
    written = judge_labelled_pairs(prompts, candidates, records, tmp_path / "g.jsonl", refuse_when_gated=True)
    assert (written["refusal_pairs"], written["over_refusal_pairs"]) == (1, 1)
    pairs = load(tmp_path / "g.jsonl").examples
    chosen = [(ex.a if ex.label == "A" else ex.b).response for ex in pairs]
    rejected = [(ex.b if ex.label == "A" else ex.a).response for ex in pairs]
    assert (chosen, rejected) == ([PLAIN_REFUSAL, "b1"], ["a1", "b0"])
    for r in records:
        r["gated"] = False
    with pytest.raises(UserError, match="no prompt was gated"):
        judge_labelled_pairs(prompts, candidates, records, tmp_path / "n.jsonl", refuse_when_gated=True)


def test_refusal_rejected_on_prompts_known_benign(tmp_path):
    """benign: on a look-alike the policy never refused (gated or not), the plain refusal is rejected against
    the best sample; on one where it refused, its sampled refusal is; a gated prompt not known benign keeps
    the gate's rule. A list of the wrong length is an error."""
    prompts = [PromptExample(id=str(i), conversation=Conversation.from_text(p)) for i, p in enumerate(HARMFUL[:3])]
    candidates = [["a0", "a1", PLAIN_REFUSAL], ["b0", "b1"], ["c0", "c1", PLAIN_REFUSAL]]
    records = [{"unsafe": [False, True, False], "p_unsafe": [.1, .9, .1], "reward": [2., 1., -3.],
                "refused": [False, False, True], "kept": 2, "worst": 1, "gated": True},
               {"unsafe": [False, False], "p_unsafe": [.1, .2], "reward": [0., 1.], "refused": [True, False],
                "kept": 1, "worst": 0, "gated": False},
               {"unsafe": [False, True, False], "p_unsafe": [.2, .8, .1], "reward": [1., 2., -3.],
                "refused": [False, False, True], "kept": 2, "worst": 1, "gated": True}]
    written = judge_labelled_pairs(prompts, candidates, records, tmp_path / "b.jsonl", refuse_when_gated=True,
                                   benign=[True, True, False])
    assert (written["pairs"], written["refusal_pairs"], written["over_refusal_pairs"]) == (3, 1, 2)
    pairs = load(tmp_path / "b.jsonl").examples
    chosen = [(ex.a if ex.label == "A" else ex.b).response for ex in pairs]
    rejected = [(ex.b if ex.label == "A" else ex.a).response for ex in pairs]
    assert (chosen, rejected) == (["a0", "b1", PLAIN_REFUSAL], [PLAIN_REFUSAL, "b0", "c1"])
    with pytest.raises(UserError, match="benign has 2 entries for 3 prompts"):
        judge_labelled_pairs(prompts, candidates, records, tmp_path / "w.jsonl", benign=[True, False])


def test_align_eval_needs_both_judges(world, tmp_path):
    judges = _judges(tmp_path)
    _, helpful = write_prompts(tmp_path / "prompts")
    with pytest.raises(UserError, match="no helpful judge"):
        main_args = dict(policies={"base": str(world["policy"])}, judges=[judges[0]], helpful=str(helpful), out=str(tmp_path / "o"))
        evaluate_policies(main_args["policies"], main_args["judges"], helpful=main_args["helpful"], out=main_args["out"])


def test_rejudge_reads_saved_responses(world, tmp_path):
    judges = _judges(tmp_path)
    harmful, helpful = write_prompts(tmp_path / "prompts")
    assert main(["align", "eval", "--policies", f"base={world['policy']}", "--judge", *map(str, judges), "--harmful",
                 str(harmful), "--helpful", str(helpful), "--out", str(tmp_path / "e"), "--limit", "3",
                 "--max-new-tokens", "3", "--no-progress"]) == 0
    first = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert main(["align", "eval", "--rejudge", str(tmp_path / "e"), "--judge", *map(str, judges), "--out",
                 str(tmp_path / "r"), "--reward-threshold=-1e9"]) == 0
    again = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert again["results"]["base"]["HmR"] == first["results"]["base"]["HmR"]  # same judge, same responses
    assert again["results"]["base"]["HpR"] == 1.0  # every reward is above -1e9


def test_a_request_judge_needs_labelled_prompts(tmp_path, capsys):
    path = tmp_path / "asks.csv"
    path.write_text("prompt\nhow do I bake bread\nhow do I steal a car\n")
    assert main(["train", "safety", "--data", str(path), "--features", "tfidf", "--out", str(tmp_path / "j"),
                 "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "asks.csv" in err and "row '" in err and "field label" in err
    assert not (tmp_path / "j").exists()
