"""The pair judge's `features="llm"` backend on a tiny random Llama: the judge contract (fit returns
self, shapes, save / load predicts exactly the same, exact swap symmetry, two-way without ties), the
template travelling with the saved judge, serving, and the CLI flag. The score and safety judges'
llm backend: tests/test_llm_point_judges.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from align_fixtures import tiny_policy
from fastapi.testclient import TestClient
from judges_fixtures import pair_examples

from referee import PairJudge, load_judge
from referee.schema import Conversation, PairExample
from referee.serve import create_app


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def judge(model_dir):
    return PairJudge(features="llm", encoder=str(model_dir), progress=False).fit(pair_examples())


def every_output(judge, data):
    return [judge.decision_function(data), judge.predict_proba(data), judge.predict_proba(data, swap_average=False)]


def test_contract_fit_save_load_exact(judge, tmp_path):
    data = pair_examples()
    p = judge.predict_proba(data)
    assert p.shape == (len(data), 3) and np.allclose(p.sum(1), 1) and judge.classes_ == ["A", "B", "tie"]
    assert judge.W_.shape == (3, 2 + 2 * 5)  # the LM's two terms, then length differences and their sizes
    folder = judge.save(tmp_path / "judge")
    assert json.loads((folder / "judge.json").read_text())["params"]["features"] == "llm"
    assert (folder / "encoder" / "template.yaml").read_text().startswith("# The default pair template")
    assert not list(folder.rglob("*.pkl"))
    loaded = load_judge(folder, trust_encoder=True)  # the tiny model is named by its path
    assert type(loaded) is PairJudge and loaded.encoder_.template == judge.encoder_.template
    for before, after in zip(every_output(judge, data), every_output(loaded, data)):
        assert np.array_equal(before, after)


def test_swap_symmetry_is_exact(judge):
    data = pair_examples()
    judge.temperature_ = 1.7
    try:
        p = judge.predict_proba(data)
        q = judge.predict_proba([ex.swapped() for ex in data])
    finally:
        judge.temperature_ = 1.0
    assert np.array_equal(p[:, [1, 0, 2]], q)


def test_two_way_without_ties_and_a_template_by_name(model_dir):
    judge = PairJudge(features="llm", encoder=f"{model_dir}#pandalm", progress=False).fit(pair_examples(ties=False))
    assert judge.classes_ == ["A", "B"] and judge.encoder_.template.name == "pandalm"
    p = judge.predict_proba(pair_examples(ties=False))
    assert (p[:, 2] == 0).all() and np.allclose(p[:, :2].sum(1), 1)


def test_serve_answers_what_the_judge_answers(judge):
    ex = PairExample(id="x", a=Conversation.from_text("how do I bake bread", "Mix flour and water, then bake."),
                     b=Conversation.from_text("how do I bake bread", "No."))
    with TestClient(create_app({"pair": judge}), base_url="http://127.0.0.1") as client:
        body = client.post("/v1/compare", json={"context": {"turns": [{"role": "user", "content": "how do I bake bread"}]},
                                                "response_a": "Mix flour and water, then bake.",
                                                "response_b": "No."}).json()
    assert "probabilities" in body, body
    expected = judge.predict_proba([ex])[0]
    assert [body["probabilities"][k] for k in ("A", "B", "tie")] == pytest.approx(expected.tolist(), abs=1e-12)


def test_cli_train_pair_with_llm_features(model_dir, tmp_path):
    from referee.cli import main

    import pandas as pd

    data = tmp_path / "arena.csv"
    pd.DataFrame([{"id": i, "model_a": "x", "model_b": "y", "prompt": json.dumps([ex.a.prompt]),
                   "response_a": json.dumps([ex.response_a]), "response_b": json.dumps([ex.response_b]),
                   "winner_model_a": int(ex.label == "A"), "winner_model_b": int(ex.label == "B"),
                   "winner_tie": int(ex.label == "tie")} for i, ex in enumerate(pair_examples())]).to_csv(data, index=False)
    code = main(["train", "pair", "--data", str(data), "--features", "llm", "--encoder", str(model_dir),
                 "--out", str(tmp_path / "judge"), "--no-progress"])
    assert code == 0
    assert load_judge(tmp_path / "judge", trust_encoder=True).features == "llm"
