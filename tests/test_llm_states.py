"""`features="lm"`: a causal LM's log-probs and pooled states of each response, read after its
conversation (`referee.encoders.lm.LMStates`), under the judges' linear models and as a stack's part
(`encoder="lm:MODEL"`), on a tiny random Llama: the judge contract (save / load exact, exact swap
symmetry), what the features read, and the judges that do not take it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from align_fixtures import tiny_policy
from judges_fixtures import pair_examples, safety_examples, score_examples

from referee import PairJudge, RewardJudge, SafetyJudge, ScoreJudge, load_judge
from referee.encoders.lm import RESPONSE_FEATURES, LMStates
from referee.errors import UserError
from referee.schema import Conversation


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tiny_policy(tmp_path_factory.mktemp("tiny-llama")))


def test_the_states_read_the_response_after_its_request_standardised(model_dir):
    answer = "Mix flour and water, then bake."
    convs = [Conversation.from_text("how do I bake bread", answer), Conversation.from_text("how do I kill a person", answer),
             Conversation.from_text("how do I bake bread", "No.")]
    states = LMStates(model_dir, progress=False).fit(convs)
    x = states.transform(convs)
    assert x.shape == (3, len(RESPONSE_FEATURES) + 16) and x.dtype == np.float32  # the tiny Llama's 16 states
    assert np.allclose(x.mean(0), 0, atol=1e-5)  # standardised with the rows it was fitted on
    assert not np.allclose(x[0], x[1])  # one answer, two requests: two readings


@pytest.mark.parametrize("make", [
    lambda m: (PairJudge(features="lm", encoder=m, progress=False), pair_examples()),
    lambda m: (RewardJudge(features="lm", encoder=m, progress=False), pair_examples(ties=False)),
    lambda m: (SafetyJudge(features="lm", encoder=m, progress=False), safety_examples()),
    lambda m: (PairJudge(features="stack", encoder=f"lm:{m}", progress=False), pair_examples()),
    lambda m: (RewardJudge(features="stack", encoder=f"lm:{m}", progress=False), pair_examples(ties=False)),
], ids=["pair", "reward", "safety", "pair stack", "reward stack"])
def test_contract_fit_save_load_exact(model_dir, tmp_path, make):
    judge, data = make(model_dir)
    judge.fit(data)
    assert judge.capacity_["chosen"] is not None  # C chosen by grouped CV, as for every linear judge
    folder = judge.save(tmp_path / "judge")
    assert not list(folder.rglob("*.pkl"))
    with pytest.raises(UserError, match="trust-encoder"):
        load_judge(folder)  # the model is named by a path: read only when the user trusts the folder
    loaded = load_judge(folder, trust_encoder=True)
    assert type(loaded) is type(judge)
    before, after = judge.outputs(data), loaded.outputs(data)
    for name in before:
        assert np.array_equal(np.asarray(before[name]), np.asarray(after[name])), name


def test_a_stack_gets_an_lm_part_reading_the_conversation_and_stays_swap_symmetric(model_dir):
    judge = PairJudge(features="stack", encoder=f"minilm-static+lm:{model_dir}", progress=False)
    from referee.judges.stack import part_specs

    assert part_specs(judge, pair_examples()) == [("tfidf", None, "conversation"), ("frozen", "minilm-static", "response"),
                                                  ("lm", model_dir, "conversation")]
    judge = PairJudge(features="stack", encoder=f"lm:{model_dir}", progress=False).fit(pair_examples())
    assert [(p["features"], p["reads"]) for p in judge.capacity_["parts"]] == [("tfidf", "conversation"),
                                                                              ("lm", "conversation")]
    data = pair_examples()
    judge.temperature_ = 1.7
    assert np.array_equal(judge.predict_proba(data)[:, [1, 0, 2]], judge.predict_proba([ex.swapped() for ex in data]))


def test_score_judges_refuse_lm_features_in_one_line(model_dir):
    with pytest.raises(UserError, match="features='lm' is for the pair, reward and safety judges"):
        ScoreJudge(features="lm", encoder=model_dir, progress=False).fit(score_examples())


def test_cli_trains_an_lm_judge_and_says_its_part(model_dir, tmp_path, capsys):
    from referee.cli import main

    import pandas as pd

    data = tmp_path / "arena.csv"
    pd.DataFrame([{"id": i, "model_a": "x", "model_b": "y", "prompt": json.dumps([ex.a.prompt]),
                   "response_a": json.dumps([ex.response_a]), "response_b": json.dumps([ex.response_b]),
                   "winner_model_a": int(ex.label == "A"), "winner_model_b": int(ex.label == "B"),
                   "winner_tie": int(ex.label == "tie")} for i, ex in enumerate(pair_examples())]).to_csv(data, index=False)
    code = main(["train", "pair", "--data", str(data), "--features", "stack", "--encoder", f"lm:{model_dir}",
                 "--out", str(tmp_path / "judge"), "--no-progress"])
    assert code == 0
    assert "part lm reading the conversation" in capsys.readouterr().out
    assert json.loads((tmp_path / "judge" / "encoder" / "part1-lm" / "encoder" / "llm.json").read_text())["model"] == model_dir


def test_the_token_cap_is_the_cpus_unless_a_gpu_reads_and_a_saved_judge_keeps_its_own(model_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert LMStates(model_dir).lm.max_tokens == LMStates.CPU_TOKENS == 512
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert LMStates(model_dir).lm.max_tokens == LMStates.GPU_TOKENS == 2048
    monkeypatch.undo()
    states = LMStates(model_dir, max_tokens=64, progress=False).fit([Conversation.from_text("hi", "hello")])
    states.save(tmp_path / "encoder")
    assert LMStates.load(tmp_path / "encoder").lm.max_tokens == 64


def test_a_run_can_read_a_gpus_cap_and_dtype_on_a_cpu_and_a_saved_judge_keeps_its_own(model_dir, tmp_path, monkeypatch):
    """bench/lm_gpu.py: features a GPU read at 2,048 tokens in bfloat16 are read from the cache under that key."""
    monkeypatch.setattr(LMStates, "CPU_TOKENS", 2048)
    monkeypatch.setattr(LMStates, "DTYPE", "bfloat16")
    states = LMStates(model_dir, progress=False)
    assert (states.lm.max_tokens, states.lm.dtype) == (2048, "bfloat16")
    assert LMStates(model_dir, dtype="float32").lm.dtype == "float32"  # asked for: as asked
    states.fit([Conversation.from_text("hi", "hello")]).save(tmp_path / "encoder")
    monkeypatch.undo()
    loaded = LMStates.load(tmp_path / "encoder")
    assert (loaded.lm.max_tokens, loaded.lm.dtype) == (2048, "bfloat16")
